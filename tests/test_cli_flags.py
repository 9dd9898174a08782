"""Flags: each one either reaches the config key it names or is refused in one line that
says which tasks or algorithms take it. Nothing is silently ignored; every --help entry
says what it does; --version answers."""
from __future__ import annotations

import argparse
import tomllib
from pathlib import Path

import pytest

import rnntrain
from rnntrain.cli.main import build_parser

from test_cli import FAST, fails_with, run_cli

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("the cat sat on the mat. " * 40, encoding="utf-8")
    return path


@pytest.mark.parametrize("args,words", [
    (["--data", "prices.csv"], ["--data does not apply to a text run", "--task forecast"]),
    (["--horizon", "3"], ["--horizon does not apply to a text run", "--task forecast"]),
    (["--head", "gaussian"], ["--head", "--task forecast"]),
    (["--task", "classify"], ["--text does not apply to a classify run", "--task text"]),
    (["--window", "5", "--seq-len", "6"], ["give one of them"]),
])
def test_a_task_flag_the_chosen_task_does_not_take_is_refused_naming_the_tasks_that_do(
        capsys, tmp_path, corpus, args, words):
    fails_with(capsys, ["train", "--text", corpus, *args, "--out", tmp_path / "run", *FAST], *words)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("args,words", [
    (["--algorithm", "ga", "--truncation", "5"], ["--truncation does not apply to --algorithm ga",
                                                  "--algorithm bptt"]),
    (["--population", "8"], ["--population does not apply to --algorithm bptt", "--algorithm cmaes"]),
    (["--algorithm", "cmaes", "--update-every", "2"], ["--update-every", "--algorithm uoro"]),
    (["--set", "algorithm.name=pso", "--truncation", "5"], ["--algorithm pso"]),
])
def test_an_algorithm_flag_is_refused_naming_the_algorithms_that_take_it(capsys, args, words):
    fails_with(capsys, ["train", *args, *FAST], *words)


def test_a_config_key_of_another_task_or_algorithm_is_refused_naming_its_owners(capsys):
    fails_with(capsys, ["train", "--set", "task.kind=text", "--set", "task.horizon=3"],
               "'task.horizon' does not apply with task.kind = 'text'", "forecast")
    fails_with(capsys, ["train", "--set", "algorithm.name=ga", "--set", "algorithm.truncation=3"],
               "does not apply with algorithm.name = 'ga'", "bptt")


def test_the_chunk_length_flags_reach_the_key_of_the_task_chosen_by_set_or_config(tmp_path, corpus):
    from rnntrain.cli.train import config_from_args
    parser = build_parser()

    def config(*args):
        return config_from_args(parser.parse_args(["train", *map(str, args)]))

    assert config("--set", "task.kind=text", "--set", f"task.text={corpus}", "--seq-len", 7).task.seq_len == 7
    assert config("--text", corpus, "--window", 9).task.seq_len == 9
    assert config("--window", 12).task.window == 12
    assert config("--seq-len", 12).task.window == 12  # forecast: the same length
    toml = tmp_path / "stream.toml"
    toml.write_text('[task]\nkind = "stream"\n', encoding="utf-8")
    assert config(toml, "--seq-len", 11).task.seq_len == 11  # the kind read from the config file


def _actions(parser: argparse.ArgumentParser, path=("rnntrain",)):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _actions(sub, (*path, name))
        elif action.dest != "help":
            yield " ".join(path), action


def test_every_help_entry_says_what_it_does():
    bare = [f"{where} {action.option_strings or action.dest}" for where, action in _actions(build_parser())
            if not action.help]
    assert bare == []


def test_version_is_the_installed_distributions(capsys):
    code, out, _ = run_cli(["--version"], capsys)
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert code == 0 and out.strip() == f"rnntrain {version}" and rnntrain.__version__ == version


def test_a_model_too_large_for_memory_is_one_line_with_the_size_asked_for(capsys, tmp_path):
    line = fails_with(capsys, ["train", "--hidden", "1000000", "--epochs", "1", "--out", tmp_path / "run", "--quiet"],
                      "out of memory", "--hidden")
    assert "4e+03 GB" in line or "4000 GB" in line, line  # the 10^6 x 10^6 recurrent matrix in float32


def test_output_piped_into_a_reader_that_stops_early_ends_quietly_with_status_0(tmp_path):
    import subprocess
    import sys
    proc = subprocess.Popen([sys.executable, "-m", "rnntrain", "train", "--hidden", "4", "--epochs", "1",
                             "--out", str(tmp_path / "run")], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.readline()  # like `| head -1`
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0 and "error" not in err, err


def test_threads_follow_the_algorithms_batched_work_not_the_model_size():
    from rnntrain.training.trainer import Trainer, auto_threads
    small = {"model.hidden": 16, "task.length": 1000}
    bptt = Trainer(rnntrain.load_config(base=small))
    ga = Trainer(rnntrain.load_config(base={**small, "algorithm.name": "ga", "algorithm.population": 50}))
    assert ga.algorithm.sequences_per_step() == 50 * ga.algorithm.evaluator.examples
    assert auto_threads(bptt.model, bptt.algorithm.sequences_per_step()) == 1  # 32 windows of 16 units: one thread
    assert auto_threads(ga.model, ga.algorithm.sequences_per_step()) == 0  # 50 networks x every window: all cores

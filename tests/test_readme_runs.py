"""The README, exactly as written: every command in its shell blocks runs, in order, in one
folder holding the files the text names (small stand-ins made here, or the real archive files
aeon ships), at a reduced size (one round, small labelled sets), and exits 0 with the files
its text promises. test_readme.py checks that every line parses; this runs them."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import rnntrain
from rnntrain.cli.main import build_parser, main
from rnntrain.cli.train import config_from_args
from rnntrain.tasks import builtin_series
from rnntrain.tasks.labelled.sequences import aeon_dataset_dir

from test_readme import DOCS, readme_commands

# files a command's text promises, checked after it ran: "--out" names a run directory, except
# for the commands that write other things there
PROMISED = {"-o": None, "--out": "summary.json"}
OUT_HOLDS = {"compare": "compare.html", "tune": "trials.csv", "export": "export.json"}


def _stand_ins(folder):
    """The files the README's commands read, as a user would have them."""
    rng = np.random.default_rng(0)
    days = pd.bdate_range("2022-01-03", periods=400)
    close = 100 + np.cumsum(rng.normal(0, 1, 400))
    pd.DataFrame({"date": days.strftime("%Y-%m-%d"), "close": close.round(2),
                  "volume": rng.integers(1000, 5000, 400)}).to_csv(folder / "prices.csv", index=False)
    words = "to be or not to be that is the question whether tis nobler in the mind".split()
    (folder / "book.txt").write_text("\n".join(f"{rng.choice(['ROMEO', 'JULIET'])}:\n{' '.join(rng.choice(words, 12))}\n"
                                               for _ in range(300)), encoding="utf-8")
    osc = builtin_series("oscillator", 200)
    pd.DataFrame(osc.values, columns=osc.columns).to_csv(folder / "newer.csv", index=False)
    dates = pd.date_range("2023-01-01", periods=300, freq="D")
    temp = 10 + 8 * np.sin(np.arange(300) / 58) + rng.normal(0, 1, 300)
    load = 50 + 2 * temp + 5 * (dates.dayofweek < 5) + rng.normal(0, 1, 300)
    load[-5:] = np.nan  # the known-future rows: temperature forecast, load to come
    pd.DataFrame({"date": dates.strftime("%Y-%m-%d"), "load": load.round(2), "temp": temp.round(2)}).to_csv(
        folder / "load.csv", index=False)
    archive = aeon_dataset_dir() / "JapaneseVowels"
    shutil.copy(archive / "JapaneseVowels_TRAIN.ts", folder / "train.ts")
    shutil.copy(archive / "JapaneseVowels_TEST.ts", folder / "test.ts")
    shutil.copy(archive / "JapaneseVowels_TEST.ts", folder / "new_vowels.ts")
    good, bad = ["great", "lovely", "fine", "superb"], ["awful", "dull", "poor", "bad"]
    (folder / "reviews.tsv").write_text("\n".join(
        f"{label}\tthe film was {rng.choice(pool)} and {rng.choice(pool)}"
        for label, pool in [("pos", good), ("neg", bad)] * 60) + "\n", encoding="utf-8")
    rows = [(f"s{k}", t, float(x), "up" if x > 0 else "down")
            for k in range(40) for t, x in enumerate(rng.normal(0, 1, rng.integers(5, 15)))]
    pd.DataFrame(rows, columns=["id", "t", "x", "label"]).to_csv(folder / "steps.csv", index=False)
    pairs = [" ".join(rng.choice(words, rng.integers(2, 5))) for _ in range(120)]
    (folder / "pairs.tsv").write_text("\n".join(f"{p}\t{' '.join(reversed(p.split()))}" for p in pairs) + "\n",
                                      encoding="utf-8")
    (folder / "inputs.txt").write_text("to be or not\nthe question\n", encoding="utf-8")
    t = np.cumsum(rng.exponential(1.0, 300) + 0.05)  # irregular sampling times
    pd.DataFrame({"t": t.round(4), "value": np.sin(0.3 * t).round(5)}).to_csv(folder / "readings.csv", index=False)


def _smaller(argv):
    """``argv`` with --set overrides that cut its work to one round of small data."""
    args = build_parser().parse_args(argv)
    if args.cmd == "tune":  # two trials of one round
        at = argv.index("--trials")
        return [*argv[:at + 1], "2", *argv[at + 2:], "--set", "train.epochs=1"]
    if args.cmd == "backtest":  # each fold's model trains one round (a run directory: its own)
        return argv if args.source and Path(args.source).is_dir() else [*argv, "--set", "train.epochs=1"]
    if args.cmd != "train" or args.resume:
        return argv
    config = config_from_args(args)
    extra = {"train.epochs": 1}
    task, algo = vars(config.task), vars(config.algorithm)
    if task.get("size") == 0 and not task.get("data"):
        extra["task.size"] = 120  # the built-in and archive sets, first 120 sequences
    if "epoch_batches" in task:
        extra.update({"task.epoch_batches": 2, "task.eval_size": 100, "task.eval_batch": 50})
    if "batches_per_step" in algo:
        extra["train.batch_size"] = 50
    if "cg_max_iters" in algo:
        extra["algorithm.cg_max_iters"] = 10
    if "switch_every" in task:  # the switching stream: a few switches
        extra["task.length"] = 400
    if "train_size" in task:  # a formal language: short strings, few of them
        extra.update({"task.train_size": 40, "task.eval_size": 20, "task.max_n": 4, "task.test_max_n": 6})
    if algo.get("finetune_epochs"):
        extra.update({"algorithm.finetune_epochs": 1, "train.epochs": 2})  # a generation, then an epoch
    return [*argv, *(item for key, value in extra.items() for item in ("--set", f"{key}={value}"))]


@pytest.mark.slow(80)
def test_every_readme_command_runs_as_written(tmp_path, monkeypatch, capsys):
    if aeon_dataset_dir() is None:
        pytest.skip("aeon (the test extra) ships the archive files the README names")
    monkeypatch.chdir(tmp_path)
    _stand_ins(tmp_path)
    # the Python quickstart's run, which `analyze ... runs/sine-lstm` reads
    rnntrain.train(rnntrain.load_config(base={"model.cell": "lstm", "train.epochs": 1}), "runs/sine-lstm")
    for argv in readme_commands():
        if argv[0] == "train" and argv[1:2] and argv[1].endswith(".toml"):
            argv = [argv[0], str(rnntrain.__file__).rsplit("/src/", 1)[0] + "/" + argv[1], *argv[2:]]
        code = main(_smaller(argv))
        err = capsys.readouterr().err
        assert code == 0, (argv, err)
        for flag in PROMISED:
            if flag in argv:
                written = tmp_path / argv[argv.index(flag) + 1]
                promised = OUT_HOLDS.get(argv[0], PROMISED[flag]) if flag == "--out" else PROMISED[flag]
                assert (written / promised).exists() if promised else written.stat().st_size > 0, argv


@pytest.mark.slow
@pytest.mark.parametrize("doc", [d for d in DOCS if readme_commands(d)], ids=lambda d: d.name)
def test_every_docs_command_runs_as_written(doc, tmp_path, monkeypatch, capsys):
    if aeon_dataset_dir() is None:
        pytest.skip("aeon (the test extra) ships the archive files the docs name")
    monkeypatch.chdir(tmp_path)
    _stand_ins(tmp_path)
    for argv in readme_commands(doc):
        if any("<" in a for a in argv):  # a placeholder (runs/<run>), not a command to copy
            continue
        code = main(_smaller(argv))
        assert code == 0, (argv, capsys.readouterr().err)

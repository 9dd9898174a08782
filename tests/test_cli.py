"""The command line: the common path works end to end, and bad input gets one line and exit 2."""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rnntrain.cli.main import main

FAST = ["--epochs", "2", "--hidden", "8", "--quiet"]


def run_cli(args, capsys):
    """(exit status, stdout, stderr) of `rnntrain ARGS` run in-process."""
    try:
        code = main([str(a) for a in args])
    except SystemExit as e:  # argparse usage errors
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err


def fails_with(capsys, args, *words):
    code, out, err = run_cli(args, capsys)
    assert code == 2, (code, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for word in words:
        assert word.lower() in lines[0].lower(), (word, lines[0])
    return lines[0]


@pytest.fixture
def csv_file(tmp_path):
    path = tmp_path / "data.csv"
    rows = ["date,temp,load,label"]
    for i in range(120):
        rows.append(f"2024-01-{1 + i % 28:02d},{(i % 17) * 0.5:.2f},{(i % 5) * 1.5:.1f},x{i}")
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def test_train_predict_and_forecast_from_a_csv(tmp_path, csv_file, capsys):
    out = tmp_path / "run"
    code, stdout, err = run_cli(["train", "--data", csv_file, "--column", "temp", "--column", "load",
                                 "--target", "temp", "--window", "8", *FAST, "--out", out], capsys)
    assert code == 0, err
    for name in ("config.toml", "metrics.csv", "summary.json", "checkpoint.pt", "loss.png", "forecast.png"):
        assert (out / name).is_file(), name
    summary = json.loads((out / "summary.json").read_text())
    assert summary["rounds"] == 2 and "persistence_mse" in summary["metrics"]["val"]
    assert len((out / "metrics.csv").read_text().strip().splitlines()) == 3  # header + 2 rounds
    code, stdout, err = run_cli(["forecast", out, "--start", "val", "--steps", "5"], capsys)
    assert code == 0, err
    lines = stdout.strip().splitlines()
    assert lines[0] == "step,date,temp,temp_true" and len(lines) == 6  # the data has dates


def test_forecast_after_the_end_of_the_series_needs_only_the_run_dir(tmp_path, capsys):
    out = tmp_path / "run"
    assert run_cli(["train", *FAST, "--out", out], capsys)[0] == 0
    code, stdout, err = run_cli(["forecast", out, "--steps", "7", "-o", tmp_path / "f.csv"], capsys)
    assert code == 0, err
    rows = (tmp_path / "f.csv").read_text().strip().splitlines()
    assert rows[0] == "step,sin" and len(rows) == 8
    assert all(abs(float(r.split(",")[1])) < 2 for r in rows[1:])


def test_text_training_and_sampling(tmp_path, text_file, capsys):
    out = tmp_path / "text"
    code, stdout, err = run_cli(["train", "--text", text_file, "--window", "16", "--cell", "gru", *FAST,
                                 "--out", out], capsys)
    assert code == 0, err
    summary = json.loads((out / "summary.json").read_text())
    assert "bpc" in summary["metrics"]["val"] and len(summary["sample"]) > 0
    text_file.unlink()  # sampling needs the run directory only
    code, stdout, err = run_cli(["sample", out, "--length", "30", "--temperature", "0.5"], capsys)
    assert code == 0, err
    assert len(stdout.rstrip("\n")) >= 30
    assert set(stdout.rstrip("\n")) <= set("the cat sat on the mat. ")


def test_config_file_and_set_overrides(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[model]\ncell = "gru"\nhidden = 8\n[train]\nepochs = 1\n', encoding="utf-8")
    out = tmp_path / "run"
    code, _, err = run_cli(["train", cfg, "--set", "model.layers=2", "--set", "optim.lr=0.01",
                            "--quiet", "--out", out], capsys)
    assert code == 0, err
    text = (out / "config.toml").read_text()
    assert 'cell = "gru"' in text and "layers = 2" in text and "lr = 0.01" in text


def test_resume_continues_an_interrupted_run(tmp_path, capsys):
    out = tmp_path / "run"
    assert run_cli(["train", "--epochs", "3", "--hidden", "8", "--quiet", "--out", out], capsys)[0] == 0
    code, stdout, err = run_cli(["train", "--resume", out, "--quiet"], capsys)
    assert code == 0, err
    assert "3 epochs" in stdout


def test_an_existing_run_is_not_overwritten_by_accident(tmp_path, capsys):
    out = tmp_path / "run"
    assert run_cli(["train", *FAST, "--out", out], capsys)[0] == 0
    before = (out / "checkpoint.pt").read_bytes()
    fails_with(capsys, ["train", *FAST, "--out", out], "--resume", "--overwrite")
    assert (out / "checkpoint.pt").read_bytes() == before


# -- bad input: one line naming the problem and the fix, exit status 2 -------------------------

def test_missing_data_file(capsys, tmp_path):
    fails_with(capsys, ["train", "--data", tmp_path / "nope.csv", *FAST], "nope.csv")


def test_empty_data_file(capsys, tmp_path):
    (tmp_path / "e.csv").write_text("", encoding="utf-8")
    fails_with(capsys, ["train", "--data", tmp_path / "e.csv", *FAST], "empty")


def test_series_shorter_than_window_plus_horizon(capsys, tmp_path):
    (tmp_path / "s.csv").write_text("x\n" + "\n".join(str(i) for i in range(30)) + "\n", encoding="utf-8")
    fails_with(capsys, ["train", "--data", tmp_path / "s.csv", "--window", "25", *FAST], "window")


def test_non_numeric_column(capsys, csv_file):
    fails_with(capsys, ["train", "--data", csv_file, "--column", "label", *FAST], "label", "numeric")


def test_missing_values_need_interpolate(capsys, tmp_path):
    rows = ["x,y"] + [f"{i if i != 40 else ''},{i % 3}" for i in range(100)]
    path = tmp_path / "m.csv"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    fails_with(capsys, ["train", "--data", path, "--window", "5", *FAST], "--interpolate")
    code, _, err = run_cli(["train", "--data", path, "--window", "5", "--interpolate", *FAST,
                            "--out", tmp_path / "r"], capsys)
    assert code == 0, err


def test_unknown_column_lists_the_available_ones(capsys, csv_file):
    fails_with(capsys, ["train", "--data", csv_file, "--column", "tmp", *FAST], "tmp", "temp", "load")


def test_unknown_config_key_suggests_the_closest(capsys):
    line = fails_with(capsys, ["train", "--set", "model.hiden=3", *FAST], "hiden")
    assert "did you mean 'hidden'" in line


def test_unknown_config_key_in_a_file(capsys, tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[optim]\nlearning_rate = 0.1\n", encoding="utf-8")
    fails_with(capsys, ["train", cfg, *FAST], "learning_rate")


@pytest.mark.parametrize("args, words", [
    (["--hidden", "0"], ["hidden"]),
    (["--lr", "0"], ["learning rate"]),
    (["--lr", "-1"], ["learning rate"]),
    (["--set", "model.dropout=1.0"], ["dropout"]),
    (["--set", "model.dropout=-0.1"], ["dropout"]),
    (["--window", "-1"], ["window"]),
    (["--epochs", "0"], ["epochs"]),
    (["--cell", "transformer"], ["cell", "lstm"]),
    (["--set", "model.hidden='many'"], ["hidden", "integer"]),
])
def test_invalid_values(capsys, args, words):
    fails_with(capsys, ["train", *args, "--quiet"], *words)


def test_text_that_is_not_utf8(capsys, tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("caf\xe9 cr\xe8me ".encode("latin-1") * 100)
    fails_with(capsys, ["train", "--text", path, *FAST], "utf-8")


def test_text_shorter_than_one_chunk(capsys, tmp_path):
    path = tmp_path / "short.txt"
    path.write_text("tiny", encoding="utf-8")
    fails_with(capsys, ["train", "--text", path, *FAST], "chunk")


def test_resume_on_a_directory_that_is_not_a_run(capsys, tmp_path):
    fails_with(capsys, ["train", "--resume", tmp_path], "not an rnntrain run")
    fails_with(capsys, ["train", "--resume", tmp_path / "missing"], "not found")


def test_usage_errors_are_one_line_too(capsys):
    fails_with(capsys, ["train", "--epochs", "many"], "epochs")


def test_a_failed_write_never_damages_an_existing_checkpoint(tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):  # an interrupted run, to be resumed
        import rnntrain
        from conftest import small_series_config
        rnntrain.train(small_series_config(), out, callbacks=[lambda r, row: (_ for _ in ()).throw(KeyboardInterrupt)])
    before = (out / "checkpoint.pt").read_bytes()

    def torn_save(obj, f, *args, **kwargs):
        f.write(b"half a checkpoint")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", torn_save)
    code, _, err = run_cli(["train", "--resume", out, "--quiet"], capsys)
    assert code == 1 and "No space left" in err and len(err.strip().splitlines()) == 1
    assert (out / "checkpoint.pt").read_bytes() == before
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
    monkeypatch.undo()
    code, _, err = run_cli(["train", "--resume", out, "--quiet"], capsys)  # and it still resumes
    assert code == 0, err


def test_the_console_script_exits_2_without_a_traceback(tmp_path):
    exe = Path(sys.executable).with_name("rnntrain")
    proc = subprocess.run([str(exe), "train", "--data", str(tmp_path / "none.csv")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


def test_the_console_script_ends_without_the_interpreters_teardown_but_loses_nothing(tmp_path):
    """`command()` ends the process by os._exit after the atexit handlers and a flush: the
    output through a pipe is whole, the run directory complete, the exit code main's."""
    exe = Path(sys.executable).with_name("rnntrain")
    out = tmp_path / "run"
    proc = subprocess.run([str(exe), "train", "--out", str(out), "--epochs", "2", "--hidden", "4"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.rstrip().splitlines()[-1] == f"run directory: {out}"
    assert "epoch 2/2" in proc.stderr
    assert {"checkpoint.pt", "config.toml", "metrics.csv", "summary.json", "loss.png", "forecast.png",
            "train_metrics.png", "report.html"} <= {p.name for p in out.iterdir()}
    assert (out / "report.html").read_text().count("data:image/png;base64,") >= 3
    again = subprocess.run([sys.executable, "-m", "rnntrain", "train", "--out", str(out)],
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 2 and "already holds a run" in again.stderr


def test_a_run_on_a_relative_data_path_forecasts_and_resumes_from_another_folder(tmp_path, monkeypatch, capsys):
    data = tmp_path / "work" / "series.csv"
    data.parent.mkdir()
    data.write_text("y\n" + "\n".join(str(torch.sin(torch.tensor(t / 5.0)).item()) for t in range(300)))
    monkeypatch.chdir(data.parent)
    code, out, err = run_cli(["train", "--data", "series.csv", "--out", tmp_path / "run", "--window", "8", *FAST], capsys)
    assert code == 0, err
    assert "test " in out  # a user's file gets a test split, and the console shows it
    other = tmp_path / "elsewhere"
    other.mkdir()
    monkeypatch.chdir(other)
    code, out, err = run_cli(["forecast", tmp_path / "run", "--start", "val", "--steps", "5"], capsys)
    assert code == 0, err
    assert len(out.strip().splitlines()) == 6


def test_forecast_continues_a_new_file_with_the_runs_scaling(tmp_path, capsys):
    (tmp_path / "a.csv").write_text("y\n" + "\n".join(str(t) for t in range(300)))
    (tmp_path / "b.csv").write_text("y\n" + "\n".join(str(1000 + t) for t in range(40)))
    code, out, err = run_cli(["train", "--data", tmp_path / "a.csv", "--out", tmp_path / "run",
                              "--epochs", "30", "--hidden", "8", "--quiet"], capsys)
    assert code == 0, err
    code, out, err = run_cli(["forecast", tmp_path / "run", "--data", tmp_path / "b.csv", "--steps", "3"], capsys)
    assert code == 0, err
    values = [float(line.split(",")[1]) for line in out.strip().splitlines()[1:]]
    assert values == pytest.approx([1040, 1041, 1042], abs=2.0)  # the ramp goes on from the new level
    (tmp_path / "c.csv").write_text("z\n1\n2\n")
    fails_with(capsys, ["forecast", tmp_path / "run", "--data", tmp_path / "c.csv"], "unknown column", "y")
    fails_with(capsys, ["forecast", tmp_path / "run", "--data", tmp_path / "b.csv", "--start", "val"], "--data")


def test_forecasts_of_dated_data_carry_their_dates(tmp_path, capsys):
    months = [f"{2000 + t // 12}-{1 + t % 12:02d}" for t in range(120)]
    (tmp_path / "m.csv").write_text("month,y\n" + "\n".join(f"{m},{t % 12}" for t, m in enumerate(months)))
    code, out, err = run_cli(["train", "--data", tmp_path / "m.csv", "--out", tmp_path / "run", *FAST], capsys)
    assert code == 0, err
    code, out, err = run_cli(["forecast", tmp_path / "run", "--steps", "3"], capsys)
    assert code == 0, err
    lines = out.strip().splitlines()
    assert lines[0] == "step,date,y" and [l.split(",")[1] for l in lines[1:]] == ["2010-01-01", "2010-02-01", "2010-03-01"]
    code, out, err = run_cli(["forecast", tmp_path / "run", "--start", "test", "--steps", "2"], capsys)
    first_test = months[int(round(0.7 * 120)) + int(round(0.15 * 120))]
    assert code == 0 and out.strip().splitlines()[1].split(",")[1] == first_test


def test_help_version_and_a_mistyped_command_import_no_torch():
    code = ("import sys, contextlib, io\n"
            "from rnntrain.cli.main import main\n"
            "for argv in (['--help'], ['--version'], ['trian']):\n"
            "    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):\n"
            "        try:\n"
            "            main(argv)\n"
            "        except SystemExit:\n"
            "            pass\n"
            "print('torch' in sys.modules, 'matplotlib' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_the_light_command_table_is_what_the_modules_register():
    from rnntrain.cli.commands import COMMANDS
    from rnntrain.cli.main import ALL, build_parser

    full = next(a for a in build_parser(ALL)._actions if isinstance(a, argparse._SubParsersAction))
    assert set(full.choices) == set(COMMANDS)
    helps = {c.dest: c.help for c in full._choices_actions}
    assert helps == {name: help for name, (_, help) in COMMANDS.items()}
    for name in COMMANDS:  # each command's own parser takes its own flags
        light = next(a for a in build_parser(name)._actions if isinstance(a, argparse._SubParsersAction))
        assert light.choices[name].format_help() == full.choices[name].format_help()

"""Ending a run from outside: SIGTERM is handled like Ctrl-C (exit 143, the last checkpoint
kept, the resumed run equal to an uninterrupted one), and the message says whether there is
a checkpoint to resume."""
import signal
import subprocess
import sys
import time

import torch

import rnntrain
from rnntrain.cli.main import main
from rnntrain.training.checkpoint import load_checkpoint

ARGS = ["--hidden", "8", "--epochs", "120", "--set", "task.length=300", "--seed", "3"]


def test_sigterm_keeps_the_last_checkpoint_and_the_resumed_run_ends_like_an_uninterrupted_one(tmp_path):
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "rnntrain", "train", *ARGS, "--out", str(run), "--quiet"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and not (run / "metrics.csv").exists():
        time.sleep(0.05)
    time.sleep(0.3)  # some rounds in
    proc.send_signal(signal.SIGTERM)
    err = proc.communicate(timeout=60)[1]
    assert proc.returncode == 143, err
    assert f"--resume {run}" in err and err.count("\n") == 1
    stopped_at = load_checkpoint(run / "checkpoint.pt")["round"]
    # the last round finished before the signal, not the first round's checkpoint (the next
    # is due only after train.checkpoint_every seconds), and the metrics file says the same
    assert 1 < stopped_at < 120
    assert len((run / "metrics.csv").read_text().splitlines()) == 1 + stopped_at
    assert main(["train", "--resume", str(run), "--quiet"]) == 0
    assert main(["train", *ARGS, "--out", str(tmp_path / "whole"), "--quiet"]) == 0
    resumed, whole = load_checkpoint(run / "checkpoint.pt"), load_checkpoint(tmp_path / "whole" / "checkpoint.pt")
    assert resumed["round"] == whole["round"] == 120
    for weights in ("model", "best"):
        a = resumed[weights] if weights == "model" else resumed["best"]["model"]
        b = whole[weights] if weights == "model" else whole["best"]["model"]
        assert all(torch.equal(a[k], b[k]) for k in b), weights


def test_an_interruption_before_the_first_checkpoint_says_there_is_nothing_to_resume(tmp_path, capsys,
                                                                                      monkeypatch):
    def interrupted(self):
        raise KeyboardInterrupt

    monkeypatch.setattr(rnntrain.Trainer, "fit", interrupted)
    assert main(["train", "--hidden", "8", "--out", str(tmp_path / "run")]) == 130
    err = capsys.readouterr().err
    assert "holds no checkpoint" in err and "--resume" not in err

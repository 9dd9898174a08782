"""Ending a run from outside: SIGTERM is handled like Ctrl-C (exit 143, the last checkpoint
kept, the resumed run equal to an uninterrupted one), and the message says whether there is
a checkpoint to resume. A signal during a short round takes effect when that round ends and
is saved; during a long round, or a second time, at once."""
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
import torch

import rnntrain
from rnntrain.cli.main import main
from rnntrain.training import interrupts
from rnntrain.training.checkpoint import load_checkpoint

from conftest import small_series_config, weights_equal

ARGS = ["--hidden", "8", "--epochs", "120", "--set", "task.length=300", "--seed", "3"]


@pytest.fixture(autouse=True)
def python_sigint_handler():
    """Python's own Ctrl-C handler for each test, whatever the test runner inherited: a
    process started in the background by a non-interactive shell begins with SIGINT
    ignored, and Python then installs no handler of its own."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.mark.slow
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


# -- when the signal takes effect (training/interrupts.py) ------------------------------------

def _signalled_in_round(config, out, round_, signals=(signal.SIGINT,)):
    """Train ``config`` into ``out``, sending this process ``signals`` in the middle of round
    ``round_`` (after half of its work); returns the round the checkpoint holds."""
    trainer = rnntrain.Trainer(config, out)
    trainer.run.create(config)
    original = trainer.algorithm.run_round

    def run_round(on_step=None):
        if trainer.round == round_ - 1:
            for sig in signals:
                os.kill(os.getpid(), sig)
        return original(on_step)
    trainer.algorithm.run_round = run_round
    with pytest.raises(KeyboardInterrupt):
        trainer.fit()
    return load_checkpoint(out / "checkpoint.pt")["round"]


@pytest.mark.parametrize("long_rounds", [False, True], ids=["short_rounds", "long_rounds"])
def test_a_signal_ends_a_short_round_first_and_interrupts_a_long_one_at_once(tmp_path, monkeypatch, long_rounds):
    """Short rounds: the round the signal fell in is finished and saved. Long rounds: it is
    abandoned and the copy of the round before is saved. Either way the resumed run ends
    exactly like the uninterrupted one."""
    monkeypatch.setattr(interrupts, "DEFER_SECONDS", 0.0 if long_rounds else 1e9)
    config = small_series_config(**{"train.epochs": 6})
    assert _signalled_in_round(config, tmp_path / "cut", 3) == (2 if long_rounds else 3)
    assert len((tmp_path / "cut" / "metrics.csv").read_text().splitlines()) == 1 + (2 if long_rounds else 3)
    assert weights_equal(rnntrain.resume(tmp_path / "cut").model, rnntrain.train(config, tmp_path / "whole").model)


def test_a_second_signal_interrupts_at_once(tmp_path, monkeypatch):
    monkeypatch.setattr(interrupts, "DEFER_SECONDS", 1e9)
    config = small_series_config(**{"train.epochs": 6})
    # round 3 abandoned; with short rounds no copy of round 2 is kept: round 1's checkpoint stays
    assert _signalled_in_round(config, tmp_path / "cut", 3, (signal.SIGINT, signal.SIGINT)) == 1
    assert weights_equal(rnntrain.resume(tmp_path / "cut").model, rnntrain.train(config, tmp_path / "whole").model)


def test_sigterm_left_at_its_default_still_ends_the_process_after_saving_the_round(tmp_path):
    """Through the Python API, with no handler of the caller's: the process ends by SIGTERM as
    it would have, once the round in progress is saved."""
    run = tmp_path / "run"
    code = ("import rnntrain; rnntrain.train(rnntrain.load_config(base={'model.hidden': 8, "
            f"'train.epochs': 100000, 'task.length': 300}}), {str(run)!r})")
    proc = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and not (run / "metrics.csv").exists():
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    err = proc.communicate(timeout=60)[1]
    assert proc.returncode == -signal.SIGTERM, err
    stopped_at = load_checkpoint(run / "checkpoint.pt")["round"]
    assert stopped_at > 1 and len((run / "metrics.csv").read_text().splitlines()) == 1 + stopped_at


def test_off_the_main_thread_signals_are_not_held():
    box = []
    thread = threading.Thread(target=lambda: box.append(interrupts.Interrupts().enabled))
    thread.start()
    thread.join()
    assert box == [False] and interrupts.Interrupts().enabled

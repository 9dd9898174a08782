"""Killed at any moment, resumed exactly: for every training family, a run killed with
SIGKILL in the middle of a round, while its checkpoint is being written, between rounds and
while its final files are written, then resumed with --resume, ends with the weights, the
per-round losses, the metrics file and the gradient-flow record of the same run left alone;
under the default checkpoint policy (after the first round, then on a time interval, at the
end) and with a checkpoint after every round (``train.checkpoint_every = 0``).

The kill is real (a forked child sends itself SIGKILL, so nothing is flushed or cleaned
up); what is arranged is only *where*: the child wraps one internal function so that its
n-th call kills it, which hits each moment deterministically instead of by timing.
"""
from __future__ import annotations

import csv
import os
import signal

import pytest
import torch

import rnntrain.training.checkpoint as checkpoint
import rnntrain.training.run_dir as run_dir
import rnntrain.training.trainer as trainer
from rnntrain.cli.main import main
from rnntrain.training.checkpoint import load_checkpoint


def _dies(owner, name, nth, when=lambda *a, **k: True):
    """Wrap ``owner.name`` so that its ``nth`` call (counting calls where ``when`` holds)
    kills the process with SIGKILL."""
    original, calls = getattr(owner, name), [0]

    def wrapper(*a, **k):
        if when(*a, **k):
            calls[0] += 1
            if calls[0] == nth:
                os.kill(os.getpid(), signal.SIGKILL)
        return original(*a, **k)
    setattr(owner, name, wrapper)


KILL_AT = {  # moment -> how it is arranged
    "mid-round": lambda: _dies(trainer.Trainer, "_diverged", 2),  # round 2 trained, not evaluated or saved
    # round 2's checkpoint written to its temporary file, not yet renamed over the old one
    "checkpoint-write": lambda: _dies(checkpoint.os, "replace", 2, lambda src, dst: str(dst).endswith("checkpoint.pt")),
    "between-rounds": lambda: _dies(run_dir.RunDir, "write_metrics", 2),  # round 2 saved, its metrics row not
    "final-files": lambda: _dies(trainer, "plot_losses", 1),  # every round done, plots and summary not
}


def killed_at(point: str, args) -> int:
    """Run `rnntrain train ARGS` in a forked child (the imports already done) that kills
    itself at ``point``; the child's exit status (-9 when the kill happened)."""
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        try:
            # no plot worker: a forked child would start its own (a Python and matplotlib's
            # import, ~1 s of CPU) only to be killed before its first figure
            os.environ["RNNTRAIN_PLOT_WORKER"] = "0"
            KILL_AT[point]()
            os._exit(main(["train", *args]))
        finally:
            os._exit(70)
    _, status = os.waitpid(pid, 0)
    return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


SMALL = ["--hidden", "5", "--window", "8", "--epochs", "3", "--seed", "1", "--set", "task.length=200", "--quiet"]
FLOW = ["--set", "monitor.gradient_flow_every=1"]
FAMILIES = {
    "bptt": FLOW, "truncated-bptt": ["--truncation", "3", *FLOW], "rtrl": ["--algorithm", "rtrl", *FLOW],
    "uoro": ["--algorithm", "uoro"], "hf": ["--algorithm", "hf", "--set", "algorithm.cg_max_iters=10"],
    "ga": ["--algorithm", "ga", "--population", "6"], "pso": ["--algorithm", "pso", "--population", "6"],
    "cmaes": ["--algorithm", "cmaes", "--population", "6"], "anneal": ["--algorithm", "anneal", "--population", "6"],
    "esn": ["--cell", "esn", "--algorithm", "esn", "--set", "algorithm.solver=rls"],
}


def _metrics(run):
    """metrics.csv's rows without the wall-clock column."""
    return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader((run / "metrics.csv").open())]


def _ending(run):
    state = load_checkpoint(run / "checkpoint.pt")
    flow = run / "gradient_flow.csv"
    rows = list(csv.reader(flow.open())) if flow.exists() else None
    return state, rows


EVERY_ROUND = ["--set", "train.checkpoint_every=0"]
# Figures are drawn only where the kill is among them: elsewhere they are a second of
# matplotlib per run and change no number (tests/test_render.py)
DRAWN = {"final-files"}


@pytest.mark.slow
@pytest.mark.parametrize("policy", ["interval", "every-round"])
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_a_run_killed_at_any_moment_resumes_to_the_uninterrupted_runs_end(tmp_path, family, policy):
    args = [*SMALL, *FAMILIES[family], *(EVERY_ROUND if policy == "every-round" else [])]
    assert main(["train", *args, "--no-figures", "--out", str(tmp_path / "whole")]) == 0
    whole, whole_flow = _ending(tmp_path / "whole")
    assert whole["round"] == 3
    # every-round: all four moments; the interval policy writes checkpoints after rounds 1 and
    # 3 only, so a kill in round 2 or at its end resumes from round 1
    for point in KILL_AT if policy == "every-round" else ("mid-round", "between-rounds", "final-files"):
        run = tmp_path / point
        figures = "--figures" if point in DRAWN else "--no-figures"
        assert killed_at(point, [*args, figures, "--out", str(run)]) == -9, point  # the kill happened where arranged
        assert main(["train", "--resume", str(run), "--quiet"]) == 0, point
        resumed, resumed_flow = _ending(run)
        assert resumed["round"] == 3, point
        for k, v in whole["model"].items():
            assert torch.equal(resumed["model"][k], v), (point, k)
        assert [r["train_loss"] for r in resumed["history"]] == [r["train_loss"] for r in whole["history"]], point
        assert resumed_flow == whole_flow, point  # the record of the round killed is not lost
        assert _metrics(run) == _metrics(tmp_path / "whole"), point
        assert (run / "summary.json").exists() and not list(run.glob(".*.tmp")), point
        assert (run / "loss.png").exists() == (point in DRAWN), point  # redrawn by the resumed run

"""`rnntrain analyze` reads run directories of every family of training algorithm the same way:
whatever produced the weights, the run holds a SequenceModel built from the core."""
from __future__ import annotations

import json

import pytest

import rnntrain
from rnntrain.cli.main import main

RUNS = {
    "rtrl": {"task.kind": "stream", "task.length": 300, "algorithm.name": "rtrl", "model.hidden": 6,
             "train.batch_size": 2, "train.epochs": 1},
    "ga": {"algorithm.name": "ga", "algorithm.population": 8, "model.hidden": 6, "train.epochs": 2,
           "task.length": 200, "task.window": 8},
    "esn": {"model.cell": "esn", "algorithm.name": "esn", "model.hidden": 30, "task.series": "mackey-glass",
            "task.length": 600, "task.window": 20, "algorithm.washout": 20, "train.epochs": 1},
    "hf": {"task.kind": "pathological", "task.problem": "adding", "task.length": 20,
           "task.epoch_batches": 2, "algorithm.name": "hf", "model.hidden": 6, "train.epochs": 1,
           "train.batch_size": 20},
}


@pytest.mark.parametrize("name", RUNS)
def test_analyze_reads_runs_of_every_algorithm_family(name, tmp_path, capsys):
    run = tmp_path / name
    rnntrain.train(rnntrain.load_config(base=RUNS[name]), run)
    assert main(["analyze", "gradients", str(run)]) == 0
    assert main(["analyze", "dynamics", str(run), "--starts", "3", "--steps", "30",
                 "--lyapunov-steps", "100"]) == 0
    dyn = json.loads((run / "analysis" / "dynamics.json").read_text())
    assert len(dyn["lyapunov"]["exponents"]) == dyn["state_dim"] > 0
    grads = json.loads((run / "analysis" / "gradients.json").read_text())
    assert grads["regime"] in ("vanishing", "exploding", "neutral")

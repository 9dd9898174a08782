"""TensorBoard tracking: the event files, read back with TensorBoard's own reader, hold the
metrics file's numbers, the config, and histograms of weights and gradients; a resumed run's
events are those of an uninterrupted run."""
from __future__ import annotations

import builtins
import csv

import pytest

import rnntrain
from rnntrain.cli.main import main
from rnntrain.errors import UserError

from rnntrain.training.checkpoint import load_checkpoint

event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")

SMALL = {"train.epochs": 4, "task.length": 200, "model.hidden": 6}


def events(run):
    acc = event_accumulator.EventAccumulator(str(run / "tensorboard"), size_guidance={
        event_accumulator.SCALARS: 0, event_accumulator.HISTOGRAMS: 0, event_accumulator.TENSORS: 0})
    acc.Reload()
    return acc


def _checkpoint_round(run):
    return load_checkpoint(run / "checkpoint.pt")["round"]


def scalars(acc):
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_the_scalars_are_the_metrics_file_and_the_config_is_there_as_text(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--tensorboard", "--epochs", "4", "--set", "task.length=200", "--hidden", "6",
                 "--quiet", "--out", str(run)]) == 0
    acc = events(run)
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    got = scalars(acc)
    assert set(got) == {("/".join(k.split("_", 1)) if k.startswith(("train_", "val_")) else k)
                        for k in rows[0] if k != "round"}
    for row in rows:
        step = int(row["round"])
        for key, text in row.items():
            if key == "round":
                continue
            tag = "/".join(key.split("_", 1)) if key.startswith(("train_", "val_")) else key
            (value,) = [v for s, v in got[tag] if s == step]
            assert value == pytest.approx(float(text), rel=1e-6), (tag, step)
    text = acc.Tensors("config/text_summary")[0].tensor_proto.string_val[0].decode()
    assert "[model]" in text and "cell = " in text


def test_histograms_of_weights_and_of_the_gradients_a_family_leaves(tmp_path):
    for algorithm, grads in (("bptt", True), ("ga", False)):
        run = tmp_path / algorithm
        config = rnntrain.load_config(base={**SMALL, "monitor.histograms_every": 2, "algorithm.name": algorithm,
                                            **({"algorithm.population": 4} if algorithm == "ga" else {})})
        result = rnntrain.train(config, run)
        tags = events(run).Tags()["histograms"]
        names = [n for n, _ in result.model.named_parameters()]
        assert {f"weights/{n}" for n in names} <= set(tags)
        assert ({f"gradients/{n}" for n in names} <= set(tags)) == grads
        assert [e.step for e in events(run).Histograms(f"weights/{names[0]}")] == [2, 4]


class Crash(Exception):
    """A failure that saves nothing (as a kill would): the checkpoint stays at round 1."""


def crash_after(n):
    def callback(round_, row):
        if round_ == n:
            raise Crash
    return callback


def test_a_resumed_runs_events_are_the_uninterrupted_runs(tmp_path):
    config = rnntrain.load_config(base={**SMALL, "monitor.tensorboard_every": 1, "train.checkpoint_every": 3600})
    whole = rnntrain.train(config, tmp_path / "whole")
    with pytest.raises(Crash):  # events of rounds 1-3 written, the checkpoint of round 1 only
        rnntrain.train(config, tmp_path / "cut", callbacks=[crash_after(3)])
    assert rnntrain.load_run(tmp_path / "cut") and _checkpoint_round(tmp_path / "cut") == 1
    rnntrain.resume(tmp_path / "cut")  # redoes rounds 2 and 3: TensorBoard drops the first writes
    a, b = scalars(events(tmp_path / "whole")), scalars(events(tmp_path / "cut"))
    assert set(a) == set(b)
    for tag in a:
        if tag != "seconds":  # wall time
            assert a[tag] == b[tag], tag
    assert [s for s, _ in b["train/loss"]] == [1, 2, 3, 4] and len(whole.history) == 4


def test_without_tensorboard_installed_the_run_is_refused_in_one_line_before_it_starts(tmp_path, monkeypatch):
    real = builtins.__import__

    def no_tensorboard(name, *a, **k):
        if name == "tensorboard" or name.startswith("tensorboard."):
            raise ImportError(name)
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_tensorboard)
    with pytest.raises(UserError, match=r"pip install 'rnntrain\[track\]'"):
        rnntrain.train(rnntrain.load_config(base={**SMALL, "monitor.tensorboard_every": 1}), tmp_path / "run")
    assert not (tmp_path / "run" / "checkpoint.pt").exists()

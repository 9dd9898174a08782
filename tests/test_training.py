"""The trainer and BPTT: learning, reproducibility, resuming, optimizers, early stopping."""
from __future__ import annotations

import csv
import math

import pytest

import rnntrain
from rnntrain.training import Trainer
from conftest import assert_resume_equals_uninterrupted, small_series_config, small_text_config, weights_equal

CELLS = ["rnn", "rnn-relu", "lstm", "gru"]


@pytest.mark.parametrize("cell", CELLS)
def test_every_cell_learns_the_sine(cell):
    # A predictor that outputs the mean has MSE 0.5 on a sine; the persistence baseline ~1e-3.
    result = rnntrain.train(small_series_config(**{"model.cell": cell, "train.epochs": 15}))
    val = result.summary["metrics"]["val"]
    assert val["mse"] < 0.01, val
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"] / 5


@pytest.mark.parametrize("cell", CELLS)
def test_every_cell_learns_text(cell, text_file):
    # 13 distinct characters: a model that learned nothing has about log2(13) = 3.7 bits/char.
    result = rnntrain.train(small_text_config(text_file, **{"model.cell": cell, "train.epochs": 6}))
    assert result.summary["metrics"]["val"]["bpc"] < 1.0, result.summary["metrics"]["val"]


def test_a_seeded_run_repeats_bit_for_bit():
    a = rnntrain.train(small_series_config(**{"task.input_noise": 0.05}))
    b = rnntrain.train(small_series_config(**{"task.input_noise": 0.05}))
    c = rnntrain.train(small_series_config(**{"task.input_noise": 0.05, "seed": 1}))
    assert weights_equal(a.model, b.model)
    assert [r["train_loss"] for r in a.history] == [r["train_loss"] for r in b.history]
    assert not weights_equal(a.model, c.model)


@pytest.mark.parametrize("overrides", [
    {"model.cell": "gru", "task.input_noise": 0.1, "model.layers": 2, "model.dropout": 0.2},
    {"model.cell": "lstm", "optim.name": "sgd", "optim.momentum": 0.9, "optim.schedule": "cosine",
     "algorithm.truncation": 4},
], ids=["gru-noise-dropout", "lstm-sgd-cosine-truncated"])
def test_interrupted_then_resumed_equals_uninterrupted(tmp_path, overrides):
    config = small_series_config(**{"train.epochs": 4, "train.restore_best": False, **overrides})
    assert_resume_equals_uninterrupted(config, tmp_path, after=2)


def test_stateful_text_resume_equals_uninterrupted(tmp_path, text_file):
    config = small_text_config(text_file, **{"train.epochs": 3, "model.cell": "lstm",
                                             "algorithm.truncation": 7})
    assert_resume_equals_uninterrupted(config, tmp_path, after=1)


@pytest.mark.parametrize("optim", [
    {"optim.name": "sgd", "optim.lr": 0.1},
    {"optim.name": "sgd", "optim.lr": 0.05, "optim.momentum": 0.9, "optim.nesterov": True},
    {"optim.name": "adam"},
    {"optim.name": "rmsprop", "optim.lr": 0.003},
], ids=["sgd", "nesterov", "adam", "rmsprop"])
def test_every_optimizer_reduces_the_loss(optim):
    result = rnntrain.train(small_series_config(**{"train.epochs": 6, **optim}))
    first, last = result.history[0]["train_loss"], result.history[-1]["train_loss"]
    assert last < first / 3, (first, last)


def test_clipping_is_on_by_default_and_reports_the_clipped_fraction():
    assert rnntrain.load_config().optim.clip == 1.0
    tiny = rnntrain.train(small_series_config(**{"optim.clip": 1e-9, "train.epochs": 1}))
    off = rnntrain.train(small_series_config(**{"optim.clip": 0.0, "train.epochs": 1}))
    assert tiny.history[0]["train_clipped_fraction"] == 1.0
    assert off.history[0]["train_clipped_fraction"] == 0.0


def test_step_schedule_decays_the_learning_rate():
    result = rnntrain.train(small_series_config(**{
        "optim.schedule": "step", "optim.step_size": 2, "optim.gamma": 0.5, "train.epochs": 5}))
    assert [r["train_lr"] for r in result.history] == pytest.approx([0.01, 0.01, 0.005, 0.005, 0.0025])


def test_early_stopping_stops_and_restores_the_best_weights():
    # A learning rate too large (not yet divergent: 1.0 is) makes validation loss stop improving quickly.
    result = rnntrain.train(small_series_config(**{
        "optim.name": "sgd", "optim.lr": 0.3, "optim.clip": 0.0, "train.patience": 2, "train.epochs": 50}))
    assert result.summary["stop_reason"].startswith("early stopping")
    assert len(result.history) < 50
    best = min(r["val_loss"] for r in result.history)
    assert result.summary["metrics"]["val"]["loss"] == pytest.approx(best, rel=1e-5)


def test_truncated_bptt_cuts_every_sequence_into_pieces_of_k_steps(text_file):
    config = small_text_config(text_file, **{"algorithm.truncation": 7, "train.epochs": 1})
    trainer = Trainer(config)
    updates = []
    real_step = trainer.algorithm.updater.step
    trainer.algorithm.updater.step = lambda: updates.append(1) or real_step()
    trainer.fit()
    lengths = [b.inputs.shape[1] for b in trainer.task.batches("train", config.train.batch_size)]
    assert max(lengths) == 20
    assert len(updates) == sum(math.ceil(n / 7) for n in lengths)


def test_truncation_as_long_as_the_sequence_is_full_bptt(text_file):
    full = rnntrain.train(small_text_config(text_file, **{"train.epochs": 1}))
    same = rnntrain.train(small_text_config(text_file, **{"train.epochs": 1, "algorithm.truncation": 20}))
    cut = rnntrain.train(small_text_config(text_file, **{"train.epochs": 1, "algorithm.truncation": 5}))
    assert weights_equal(full.model, same.model)
    assert not weights_equal(full.model, cut.model)


def test_truncated_gradient_reaches_only_k_steps_back():
    # Many-to-one: with truncation k, the gradient w.r.t. inputs before the last piece is zero.
    config = small_series_config(**{"algorithm.truncation": 3, "train.epochs": 1})
    trainer = Trainer(config)
    pieces = trainer.algorithm._pieces(next(trainer.task.batches("train", 4)))
    assert [p[0].inputs.shape[1] for p in pieces] == [3, 3, 3, 1]
    assert [p[1] is None for p in pieces] == [True, True, True, False]


def test_validation_runs_every_eval_every_rounds_and_the_best_round_is_among_them(tmp_path):
    config = rnntrain.load_config(base={"train.epochs": 7, "train.eval_every": 3, "task.length": 200,
                                        "model.hidden": 6})
    result = rnntrain.train(config, tmp_path / "run")
    evaluated = [r["round"] for r in result.history if "val_loss" in r]
    assert evaluated == [1, 3, 6, 7]  # every third, and the first and the last
    assert result.summary["best_round"] in evaluated
    rows = list(csv.DictReader((tmp_path / "run" / "metrics.csv").open()))
    assert [r["round"] for r in rows] == [str(k) for k in range(1, 8)]
    assert [r["val_loss"] != "" for r in rows] == [k in evaluated for k in range(1, 8)]


def test_metrics_csv_grows_by_one_appended_row_per_round(tmp_path):
    from rnntrain.training.run_dir import RunDir
    run = RunDir(tmp_path)
    history = [{"round": 1, "train_loss": 0.5}]
    run.write_metrics(history)
    first = (tmp_path / "metrics.csv").stat().st_ino
    history.append({"round": 2, "train_loss": 0.25})
    run.write_metrics(history)
    assert (tmp_path / "metrics.csv").stat().st_ino == first  # appended, not replaced
    history.append({"round": 3, "train_loss": 0.125, "val_loss": 1.0})  # a new column: rewritten
    run.write_metrics(history)
    assert (tmp_path / "metrics.csv").read_text() == ("round,train_loss,val_loss\n1,0.5,\n2,0.25,\n"
                                                      "3,0.125,1\n")

"""Every training algorithm on each new kind of forecast (probabilistic heads; known-future
and calendar inputs with seasonal differencing and closed-loop windows): it trains and its
run resumes exactly, or it refuses in one line naming the fix."""
import numpy as np
import pandas as pd
import pytest
import torch

import rnntrain
from rnntrain.algorithms import ALGORITHMS

from conftest import algorithm_settings, assert_resume_equals_uninterrupted, trains_or_refuses
VARIANTS = {
    "gaussian": {"task.head": "gaussian"},
    "quantile": {"task.head": "quantile"},
    "covariates": {"task.future": ["temp"], "task.calendar": "auto", "task.rollout": 2, "task.window": 14},
}
# a probabilistic head's loss is a likelihood: no least-squares readout, no Gauss-Newton
REFUSED = {(v, a) for v in ("gaussian", "quantile") for a in ("hf", "esn")}


@pytest.fixture(scope="module")
def daily(tmp_path_factory):
    """200 days: y has a weekly pattern and follows temp; temp is known 5 days ahead."""
    rng = np.random.default_rng(0)
    dates = pd.date_range("2021-01-04", periods=205, freq="D")
    temp = 10 + 5 * np.sin(np.arange(205) / 9) + rng.normal(0, 0.5, 205)
    y = 2 * temp + 5 * (dates.dayofweek >= 5) + rng.normal(0, 1, 205)
    y[200:] = np.nan
    path = tmp_path_factory.mktemp("matrix") / "daily.csv"
    pd.DataFrame({"date": dates.strftime("%Y-%m-%d"), "y": y, "temp": temp}).to_csv(path, index=False)
    return path


def config(path, variant, algorithm, **extra):
    base = {"task.data": str(path), "task.targets": ["y"], "train.epochs": 2, "model.hidden": 6,
            "train.batch_size": 32, **algorithm_settings(algorithm), **VARIANTS[variant], **extra}
    if variant != "covariates":
        base["task.columns"] = ["y"]
    return rnntrain.load_config(base=base)


@pytest.mark.parametrize("algorithm", sorted(ALGORITHMS))
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_algorithm_trains_each_forecast_variant_or_refuses_in_one_line(daily, variant, algorithm):
    run = trains_or_refuses(config(daily, variant, algorithm), (variant, algorithm) in REFUSED, "task.head=point")
    if run is None:
        return
    val = run.summary["metrics"]["val"]
    assert np.isfinite(val["loss"]) and np.isfinite(val["mase"]) and run.history[-1]["round"] >= 1
    if variant != "covariates":
        assert 0 <= val["coverage"] <= 1 and val["crps"] > 0
    else:
        assert run.task.inputs == ["y", "temp", "weekday_sin", "weekday_cos", "yearday_sin", "yearday_cos"]


@pytest.mark.parametrize("variant,algorithm", [("gaussian", "bptt"), ("covariates", "bptt"),
                                               ("covariates", "cmaes"), ("quantile", "uoro")])
def test_a_forecast_variants_run_resumes_bit_for_bit(daily, tmp_path, variant, algorithm):
    assert_resume_equals_uninterrupted(config(daily, variant, algorithm, **{"train.epochs": 3}), tmp_path)


def test_closed_loop_windows_are_the_models_own_predictions_fed_back(daily):
    cfg = config(daily, "covariates", "bptt", **{"task.calendar": "none", "task.normalize": "none"})
    trainer = rnntrain.Trainer(cfg)
    task, model = trainer.task, trainer.model
    task.start_round(0, model)
    assert task._rolled is None  # round 0: an untrained model's predictions say nothing
    task.start_round(1, model)
    x, y = task._rolled
    w = task._windows["train"]
    n = len(w.x)
    assert len(x) == (n - 1) + (n - 2)
    with torch.no_grad():
        first = task.predict_windows(model.eval(), w.x[:1])[0, 0]
    assert torch.allclose(x[0, -1, 0], first)  # window 1 ends with window 0's forecast of y
    assert torch.equal(x[0, -1, 1], w.x[1, -1, 1])  # temp, known, stays true
    assert torch.equal(x[0, :-1], w.x[1, :-1]) and torch.equal(y[:n - 1], w.y[1:])

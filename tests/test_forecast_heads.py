"""Probabilistic forecasts (task.head): the heads' losses and quantiles are the stated
formulas, the interval scores are right on hand-made numbers, and a trained head's 90%
intervals cover 85-95% of the test points of a series with known noise."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import rnntrain
from rnntrain.errors import UserError
from rnntrain.tasks.heads import GaussianHead, interval_scores, make_head


def test_the_gaussian_heads_loss_is_the_normal_negative_log_likelihood():
    torch.manual_seed(0)
    out, y = torch.randn(5, 6, dtype=torch.float64), torch.randn(5, 3, dtype=torch.float64)
    head = GaussianHead(0.9)
    mu, sigma = out.reshape(5, 3, 2)[..., 0], F.softplus(out.reshape(5, 3, 2)[..., 1]) + 1e-4
    expected = -torch.distributions.Normal(mu, sigma).log_prob(y).mean()
    assert torch.allclose(head.loss(out, y), expected)
    levels = head.levels(out)
    assert sorted(levels) == [0.05, 0.5, 0.95]
    assert torch.allclose(levels[0.95], mu + 1.6448536 * sigma)


def test_the_quantile_heads_loss_is_the_pinball_loss_and_its_quantiles_never_cross():
    head = make_head("quantile", 0.8, ())
    assert head.quantiles == pytest.approx([0.1, 0.5, 0.9]) and head.interval == pytest.approx(0.8)
    out = torch.tensor([[3.0, 1.0, 2.0]])  # one value, its three quantiles (crossing)
    y = torch.tensor([[2.5]])
    # pinball: q=0.1 at 3.0 -> 0.9*0.5; q=0.5 at 1.0 -> 0.5*1.5; q=0.9 at 2.0 -> 0.9*0.5
    assert head.loss(out, y).item() == pytest.approx((0.45 + 0.75 + 0.45) / 3)
    levels = head.levels(out)
    assert [levels[q].item() for q in (0.1, 0.5, 0.9)] == [1.0, 2.0, 3.0]  # sorted


def test_interval_scores_on_hand_made_numbers():
    truth = np.array([0.0, 1.0, 2.0, 3.0]).reshape(4, 1, 1)
    levels = {0.05: truth - 1, 0.5: truth.copy(), 0.95: truth + 1}
    levels[0.05][3] = 3.5  # the last point falls outside its interval
    s = interval_scores(levels, truth, make_head("quantile", 0.9, ()))
    assert s["coverage"] == 0.75 and s["width"] == pytest.approx((2 + 2 + 2 + 0.5) / 4)
    # pinball: q=0.05 at truth-1: 0.05 each, at 3.5 vs 3: 0.95*0.5; q=0.95 at truth+1: 0.05 each
    assert s["pinball"] == pytest.approx(((0.05 * 3 + 0.475) / 4 + 0 + 0.05) / 3)
    assert s["crps"] == pytest.approx(2 * s["pinball"])
    g = GaussianHead(0.9)
    sigma = 2.0
    exact = {0.05: truth - g.z * sigma, 0.5: truth, 0.95: truth + g.z * sigma}
    # CRPS of N(y, sigma^2) at y: sigma (2 phi(0) - 1/sqrt(pi))
    crps = interval_scores(exact, truth, g)["crps"]
    assert crps == pytest.approx(sigma * (2 / math.sqrt(2 * math.pi) - 1 / math.sqrt(math.pi)))
    assert interval_scores({0.5: truth}, truth, make_head("point", 0.9, ())) == {}


@pytest.fixture(scope="module")
def noisy_csv(tmp_path_factory):
    """y_t = sin(2 pi t / 25) + 0.3 e_t, e ~ N(0, 1): the ideal 90% interval is +-0.49."""
    rng = np.random.default_rng(1)
    t = np.arange(4000)
    y = np.sin(2 * np.pi * t / 25) + 0.3 * rng.normal(size=len(t))
    path = tmp_path_factory.mktemp("noise") / "noisy.csv"
    path.write_text("y\n" + "\n".join(f"{v:.6f}" for v in y))
    return path


@pytest.mark.parametrize("head", ["gaussian", "quantile"])
def test_a_trained_heads_90_percent_intervals_cover_85_to_95_percent_of_test_points(noisy_csv, tmp_path, head):
    config = rnntrain.load_config(base={"task.data": str(noisy_csv), "task.head": head, "task.window": 25,
                                        "model.hidden": 16, "train.epochs": 12, "optim.lr": 3e-3})
    result = rnntrain.train(config, tmp_path / "run")
    test = result.summary["metrics"]["test"]  # 600 points: the coverage's sampling sd is 0.012
    assert 0.85 <= test["coverage"] <= 0.95
    assert 2 * 1.645 * 0.3 * 0.8 < test["width"] < 2 * 1.645 * 0.3 * 1.5  # near the noise's own
    assert test["nrmse"] < 0.7 and test["pinball"] > 0 and test["crps"] > 0
    fc = rnntrain.forecast(tmp_path / "run", steps=3)
    assert np.all(fc.lower < fc.values) and np.all(fc.values < fc.upper)
    header = fc.to_csv().splitlines()[0]
    assert header == "step,y,y_lo90,y_hi90"
    assert (tmp_path / "run" / "forecast.png").exists()


def test_a_probabilistic_head_is_refused_by_closed_form_and_curvature_algorithms_and_decoders(tmp_path):
    with pytest.raises(UserError, match="least squares.*task.head=point"):
        rnntrain.train(rnntrain.load_config(base={"task.head": "gaussian", "model.cell": "esn",
                                                  "algorithm.name": "esn", "train.epochs": 1}))
    with pytest.raises(UserError, match="Gauss-Newton.*task.head=point"):
        rnntrain.train(rnntrain.load_config(base={"task.head": "quantile", "algorithm.name": "hf",
                                                  "train.epochs": 1}))
    with pytest.raises(UserError, match="decoder.*head"):
        rnntrain.load_config(base={"task.head": "gaussian", "task.decoder": True})
    with pytest.raises(UserError, match="quantiles.*0.5"):
        rnntrain.load_config(base={"task.head": "quantile", "task.quantiles": [0.1, 0.9]})


@pytest.mark.parametrize("horizon", [1, 3])
@pytest.mark.parametrize("head", ["point", "gaussian", "quantile"])
def test_a_forecasts_population_scores_are_its_loss_and_tolerance_count_per_network(head, horizon):
    """Population methods score P networks at once (the point head by plain batched ops, the
    others by vmap): each network's loss and number of windows within tolerance are what
    loss and within_tolerance give for its outputs alone."""
    from rnntrain.training.build import make_task

    config = rnntrain.load_config(base={"task.head": head, "task.horizon": horizon})
    task = make_task(config)
    batch = next(task.batches("train", 64, generator=torch.Generator().manual_seed(0)))
    g = torch.Generator().manual_seed(1)
    outputs = batch.targets.repeat_interleave(task.head.size, 1)[None] + \
        0.1 * torch.randn(5, *batch.targets.shape[:1], task.spec.output_size, generator=g)
    losses, within = task.population_scores(outputs, batch, 0.1)
    for p in range(5):
        assert losses[p].item() == pytest.approx(task.loss(outputs[p], batch).item(), rel=1e-6)
        assert within[p].item() == task.within_tolerance(outputs[p], batch, 0.1).sum().item()
    assert 0 < within.sum() < 5 * len(batch)  # some windows in, some out: the count is tested

"""The forecasts a model must beat: their arithmetic on series made by hand, and the verdict
every forecasting run reports."""
import json

import numpy as np
import pytest
import torch

from rnntrain.cli.main import main as cli
from rnntrain.errors import UserError
from rnntrain.tasks.baselines import errors, mase_scale, season_length, seasonal_naive, verdict
from rnntrain.tasks.forecast import ForecastConfig, ForecastTask


def test_seasonal_naive_reads_the_same_point_one_season_back_from_the_origin():
    values = np.arange(20.0)[:, None]
    rows = np.array([[10, 11, 12]])  # origin row 9
    assert seasonal_naive(values, rows, 4)[0, :, 0].tolist() == [6, 7, 8]
    assert seasonal_naive(values, rows, 2)[0, :, 0].tolist() == [8, 9, 8]  # h = 3 reaches 2 seasons back
    assert seasonal_naive(values, np.array([[1, 2]]), 4)[0, :, 0].tolist() == [0, 0]  # before the start: row 0


@pytest.mark.parametrize("dates, season", [
    ([f"2020-{m:02d}" for m in range(1, 13)], 12), ([f"2020-01-{d:02d}" for d in range(1, 20)], 7),
    ([f"2020-01-01 {h:02d}:00" for h in range(20)], 24),
    ([f"2020-01-01 {h // 2:02d}:{30 * (h % 2):02d}" for h in range(40)], 48), ([f"{y}-01-01" for y in range(1990, 2010)], 1),
    ([f"{y}-{m:02d}-01" for y in range(2000, 2005) for m in (1, 4, 7, 10)], 4),
    ([f"2020-{(1 + d // 31):02d}-{(1 + d % 31):02d}" for d in range(0, 28 * 7, 7) if d % 31 < 28], 52),
    (None, 1), (["a", "b", "c"], 1)])
def test_the_season_comes_from_the_spacing_of_the_dates(dates, season):
    assert season_length(dates) == season


def test_mase_divides_the_mae_by_the_training_seasonal_differences():
    train = np.array([[1.0], [3.0], [2.0], [5.0]])
    assert mase_scale(train, 1).tolist() == [2.0]  # |2|, |-1|, |3|
    assert mase_scale(train, 2).tolist() == [1.5]  # |1|, |2|
    e = errors(np.full((1, 2, 1), 4.0), np.array([[[3.0], [6.0]]]), mase_scale(train, 1))
    assert e["mae"] == 1.5 and e["mase"] == 0.75 and e["mse"] == 2.5


def test_a_pure_season_is_forecast_exactly_by_seasonal_naive_and_the_run_says_who_beats_whom(tmp_path, capsys):
    months = [f"{2000 + t // 12}-{1 + t % 12:02d}" for t in range(240)]
    y = [10 + 5 * np.sin(2 * np.pi * t / 12) for t in range(240)]
    path = tmp_path / "monthly.csv"
    path.write_text("month,y\n" + "\n".join(f"{m},{v:.12g}" for m, v in zip(months, y)))
    task = ForecastTask(ForecastConfig(data=str(path), window=6, horizon=3))
    assert task.season == 12
    w = task._windows["test"]
    base = task.baselines(w)
    assert np.abs(base["seasonal_naive"] - w.raw_y).max() < 1e-9
    assert np.allclose(base["mean"], np.mean(y[:int(round(0.7 * 240))]))
    assert np.allclose(base["persistence"][:, 2], w.raw_last)
    run_dir = tmp_path / "run"
    assert cli(["train", "--data", str(path), "--window", "6", "--epochs", "2", "--hidden", "4",
                "--out", str(run_dir), "--quiet"]) == 0
    out = capsys.readouterr().out
    # a pure season has no seasonal differences to scale MASE by: the verdict falls back to NRMSE
    line = next(ln for ln in out.splitlines() if "test NRMSE" in ln)
    assert "does not beat" in line and "seasonal naive (0)" in line.split("does not beat")[1]
    judged = json.loads((run_dir / "summary.json").read_text())["against_baselines"]
    assert judged["split"] == "test" and "seasonal_naive" in judged["loses_to"] and judged["baselines"]["seasonal_naive"] < 1e-9
    assert judged["measure"] == "nrmse"


def test_the_verdict_lists_the_baselines_beaten_and_not():
    v = verdict({"nrmse": 0.5, "persistence_nrmse": 0.6, "mean_nrmse": 0.4}, ("persistence", "seasonal_naive", "mean"))
    assert v["beats"] == ["persistence"] and v["loses_to"] == ["mean"] and v["measure"] == "nrmse"
    v = verdict({"nrmse": float("nan"), "mase": 0.9, "persistence_mase": 1.0, "mean_mase": 2.0}, ("persistence", "mean"))
    assert v["measure"] == "mase" and v["beats"] == ["persistence", "mean"]  # MASE first: defined on flat truth


# ---------------------------------------------------------------- trend and level
class Zero(torch.nn.Module):
    """Predicts 0 for every target step (in the units it is shown)."""

    def __init__(self, outputs):
        super().__init__()
        self.outputs, self.p = outputs, torch.nn.Parameter(torch.zeros(()))

    def forward(self, x, state=None, **_):
        return x.new_zeros(len(x), self.outputs) + 0 * self.p, None


def trend_file(tmp_path, n=400):
    t = np.arange(n)
    path = tmp_path / "trend.csv"
    path.write_text("y\n" + "\n".join(f"{v:.9g}" for v in 0.5 * t + np.sin(t / 3)))
    return path


def test_level_normalisation_maps_a_zero_forecast_back_to_the_last_value_and_window_to_the_mean(tmp_path):
    path = trend_file(tmp_path)
    level = ForecastTask(ForecastConfig(data=str(path), window=8, horizon=2))
    assert level.normalize == "level"  # a file's default
    w = level._windows["test"]
    z = level.predict_windows(Zero(2), w.x)
    assert torch.allclose(z, w.x[:, -1, :1].repeat(1, 2), atol=1e-6)  # persistence, exactly
    batch = next(level.batches("train", 16, generator=torch.Generator().manual_seed(0)))
    assert torch.all(batch.inputs[:, -1] == 0)
    window = ForecastTask(ForecastConfig(data=str(path), window=8, horizon=2, normalize="window"))
    assert torch.allclose(window.predict_windows(Zero(2), w.x), w.x.mean(1).repeat(1, 2), atol=1e-6)
    norm = window._window_stats(w.x)
    assert torch.allclose(window._to_window(window._to_window(w.x, norm), norm, back=True), w.x, atol=1e-6)


def test_seasonal_normalisation_maps_a_zero_forecast_back_to_the_seasonal_naive(tmp_path):
    t = np.arange(240)
    y = 0.5 * t + 10 * np.sin(2 * np.pi * t / 12)  # monthly: trend and a season of 12 rows
    dates = [f"{2000 + k // 12}-{k % 12 + 1:02d}" for k in t]
    path = tmp_path / "monthly.csv"
    path.write_text("month,y\n" + "\n".join(f"{d},{v:.6f}" for d, v in zip(dates, y)))
    task = ForecastTask(ForecastConfig(data=str(path), horizon=3))
    assert task.season == 12 and task.seasonal and task.normalize == "season" and task.window == 24
    w = task._windows["test"]
    z = task.predict_windows(Zero(3), w.x)  # (N, 3) scaled
    expected = task._windows["test"].x[:, 24 - 12:24 - 12 + 3, 0]  # each step's value a season back
    assert torch.allclose(z, expected, atol=1e-5)
    evaluated = task.evaluate(Zero(3), "test")
    assert evaluated["mase"] == pytest.approx(evaluated["seasonal_naive_mase"], rel=1e-4)
    level = ForecastTask(ForecastConfig(data=str(path), horizon=3, normalize="level"))
    assert level.window == 24  # the window follows the season; the normalisation is the user's
    with pytest.raises(UserError, match="window >= season"):
        ForecastTask(ForecastConfig(data=str(path), window=6, normalize="season"))


def test_a_linear_trend_is_extrapolated_by_the_default_command(tmp_path, capsys):
    # the test rows (t = 340..399, values 170..200) lie above everything seen in training
    run = tmp_path / "run"
    assert cli(["train", "--data", str(trend_file(tmp_path)), "--window", "12", "--epochs", "40", "--hidden", "16",
                "--out", str(run), "--quiet"]) == 0
    judged = json.loads((run / "summary.json").read_text())
    test = judged["metrics"]["test"]
    assert test["nrmse"] < 0.1 and test["mae"] < 0.5, test  # stated error: within 0.5 (the trend moves 30)
    assert "persistence" in judged["against_baselines"]["beats"]


def test_normalising_needs_every_target_among_the_inputs(tmp_path):
    path = tmp_path / "two.csv"
    path.write_text("a,b\n" + "\n".join(f"{t},{2 * t}" for t in range(300)))
    with pytest.raises(UserError, match="every target must be an input"):
        ForecastTask(ForecastConfig(data=str(path), columns=("a",), targets=("b",), normalize="level"))
    assert ForecastTask(ForecastConfig(data=str(path), columns=("a",), targets=("b",))).normalize == "none"


def test_smape_is_m4s_symmetric_percentage_error():
    truth = np.array([100.0, 0.0, 50.0]).reshape(3, 1, 1)
    pred = np.array([110.0, 0.0, 25.0]).reshape(3, 1, 1)
    # 2*10/210, 0 (both zero counts as 0), 2*25/75
    assert errors(pred, truth)["smape"] == pytest.approx(100 * (20 / 210 + 0 + 50 / 75) / 3)

"""Many series in one long file (task.series_id): each series read, scaled and split on its
own, one global model trained on all their windows, metrics per series and averaged, and a
forecast per series."""
import csv
import io

import numpy as np
import pandas as pd
import pytest

import rnntrain
from rnntrain.cli.main import main
from rnntrain.errors import UserError
from rnntrain.tasks.forecast import ForecastConfig
from rnntrain.tasks.panel import PanelForecastTask
from rnntrain.tasks.series import load_panel

from conftest import assert_resume_equals_uninterrupted


def stores(path, lengths=(60, 60, 60), levels=(100.0, 5.0, 1000.0)):
    """Monthly sales of a few stores at very different levels, a row per (store, month)."""
    rng = np.random.default_rng(0)
    rows = []
    for k, (n, level) in enumerate(zip(lengths, levels)):
        months = pd.date_range("2015-01-01", periods=n, freq="MS").strftime("%Y-%m")
        t = np.arange(n)
        y = level * (1 + 0.1 * np.sin(2 * np.pi * t / 12 + k)) + rng.normal(0, 0.01 * level, n)
        rows += [{"store": f"S{k}", "month": m, "sales": round(v, 4)} for m, v in zip(months, y)]
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_a_long_file_is_read_as_one_series_per_id_in_order_of_appearance(tmp_path):
    path = tmp_path / "long.csv"
    path.write_text("id,date,x\nb,2020-01-01,1\nb,2020-01-02,2\na,2020-01-01,10\na,2020-01-02,20\na,2020-01-03,30\n")
    series = load_panel(path, "id")
    assert list(series) == ["b", "a"] and series["a"].columns == ["x"]
    np.testing.assert_array_equal(series["a"].values[:, 0], [10, 20, 30])
    assert list(series["b"].time) == ["2020-01-01", "2020-01-02"]
    with pytest.raises(UserError, match="series-id column 'store' is not in.*id, date, x"):
        load_panel(path, "store")
    path.write_text("id,x\na,1\n,2\n")
    with pytest.raises(UserError, match="rows without a series id"):
        load_panel(path, "id")


def test_each_series_is_scaled_and_split_on_its_own_and_the_model_sees_them_all(tmp_path):
    task = PanelForecastTask(ForecastConfig(data=str(stores(tmp_path / "s.csv")), series_id="store"))
    members = task.members
    assert list(members) == ["S0", "S1", "S2"]
    for m in members.values():
        a, b = m.bounds["train"]
        np.testing.assert_allclose(m.scaler.offset, m.series.values[a:b].mean(0))  # its own rows
    assert task.split_size("train") == sum(m.split_size("train") for m in members.values())
    batch = next(task.batches("train", 10_000))
    assert len(batch) == task.split_size("train")
    assert all(m.window == task.first.window and m.normalize == task.first.normalize for m in members.values())


def test_metrics_are_the_mean_over_series_and_the_loss_over_windows(tmp_path):
    task = PanelForecastTask(ForecastConfig(data=str(stores(tmp_path / "s.csv", lengths=(60, 90, 60))),
                                            series_id="store"))
    model = rnntrain.Trainer(rnntrain.load_config(base={"task.data": str(tmp_path / "s.csv"),
                                                        "task.series_id": "store"})).model
    per = {k: m.evaluate(model, "test") for k, m in task.members.items()}
    agg = task.evaluate(model, "test")
    assert agg["mase"] == pytest.approx(np.mean([v["mase"] for v in per.values()]))
    assert agg["smape"] == pytest.approx(np.mean([v["smape"] for v in per.values()]))
    sizes = [m.split_size("test") for m in task.members.values()]
    assert agg["loss"] == pytest.approx(np.average([v["loss"] for v in per.values()], weights=sizes))


def test_series_that_would_choose_different_windows_share_the_shortest(tmp_path):
    task = PanelForecastTask(ForecastConfig(data=str(stores(tmp_path / "s.csv", lengths=(200, 30, 200))),
                                            series_id="store"))
    assert {m.window for m in task.members.values()} == {task.members["S1"].window} != {12}
    assert task.first.normalize == "level"


def test_the_cli_trains_reports_per_series_and_forecasts_each(tmp_path, capsys):
    data, run = stores(tmp_path / "s.csv"), tmp_path / "run"
    assert main(["train", "--data", str(data), "--series-id", "store", "--epochs", "3", "--out", str(run),
                 "--quiet"]) == 0
    rows = list(csv.DictReader(io.StringIO((run / "per_series.csv").read_text())))
    assert [r["series"] for r in rows] == ["S0", "S1", "S2"] and "test_mase" in rows[0]
    assert (run / "forecast-S0.png").exists() and (run / "forecast-S2.png").exists()
    capsys.readouterr()
    assert main(["forecast", str(run), "--steps", "2"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "series,step,date,sales" and [r.split(",")[0] for r in lines[1:]] == ["S0", "S0", "S1",
                                                                                          "S1", "S2", "S2"]
    fc = rnntrain.forecast(run, steps=4)
    levels = fc.values[:, 0, 0]  # each store forecast at its own level
    assert levels[1] < 20 < levels[0] < 200 < levels[2]
    assert main(["forecast", str(run), "--data", str(data), "--steps", "1"]) == 0
    assert main(["generate", str(run)]) == 2
    assert "one series" in capsys.readouterr().err
    assert main(["backtest", str(run), "--folds", "2"]) == 2
    assert "many (task.series_id)" in capsys.readouterr().err
    assert main(["train", "--data", str(data), "--series-id", "store", "--epochs", "3", "--out", str(run),
                 "--overwrite", "--quiet"]) == 0  # its own files are a run's


def test_a_long_file_run_resumes_bit_for_bit(tmp_path):
    config = rnntrain.load_config(base={"task.data": str(stores(tmp_path / "s.csv")), "task.series_id": "store",
                                        "train.epochs": 3, "model.hidden": 8, "task.rollout": 1})
    assert_resume_equals_uninterrupted(config, tmp_path)

"""Irregularly sampled series: a time column's gaps become the input "dt" (in units of the
median gap, unscaled, the last input), which a continuous-time cell integrates over."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import rnntrain
from rnntrain.cli.main import main
from rnntrain.errors import UserError
from rnntrain.tasks.forecast import ForecastTask
from rnntrain.tasks.forecast_config import ForecastConfig


def irregular(path, n=300, *, seed=0, dates=False):
    rng = np.random.default_rng(seed)
    t = np.cumsum(rng.exponential(2.0, n) + 0.1)
    value = np.sin(0.2 * t) + 0.1 * rng.standard_normal(n)
    with open(path, "w") as f:
        if dates:
            stamps = np.datetime64("2024-01-01T00:00") + (t * 3600).astype("timedelta64[s]")
            f.write("date,value\n" + "".join(f"{str(s)[:19].replace('T', ' ')},{v:.6f}\n"
                                               for s, v in zip(stamps, value)))
        else:
            f.write("t,load,value\n" + "".join(f"{a:.6f},{1 + v:.6f},{v:.6f}\n" for a, v in zip(t, value)))
    return t


def test_the_gaps_of_a_numeric_time_column_are_the_last_input_in_units_of_the_median_gap(tmp_path):
    t = irregular(tmp_path / "s.csv")
    task = ForecastTask(ForecastConfig(data=str(tmp_path / "s.csv"), time_column="t", window=6))
    assert task.inputs[-1] == "dt" and "t" not in task.inputs
    assert task.spec.time_input
    gaps = np.diff(t)
    unit = np.median(gaps)
    j = task.series.columns.index("dt")
    np.testing.assert_allclose(task.series.values[1:, j], gaps / unit, rtol=1e-5)
    assert task.series.values[0, j] == 1.0
    x = task._windows["train"].x  # (N, W, F): the scaler leaves the durations alone
    np.testing.assert_allclose(x[:, :, -1].numpy(), task.series.values[:x.shape[0] + 5, j][
        np.arange(x.shape[0])[:, None] + np.arange(6)], rtol=1e-5)
    assert task.scaler.scale[j] == 1.0 and task.scaler.offset[j] == 0.0
    assert task.scaler.scale[task.series.columns.index("value")] != 1.0  # the rest are scaled


def test_the_gaps_of_a_date_column_work_the_same(tmp_path):
    t = irregular(tmp_path / "d.csv", dates=True)
    task = ForecastTask(ForecastConfig(data=str(tmp_path / "d.csv"), time_column="date", window=6))
    gaps = np.diff(np.floor(t * 3600))  # the file's whole seconds
    np.testing.assert_allclose(task.series.values[1:, -1], gaps / np.median(gaps), rtol=1e-6)


@pytest.mark.parametrize("rows,message", [
    ("t,value\n0,1\n1,2\n1,3\n2,1\n", "must increase from row to row, but data rows 2 and 3 go from 1 to 1"),
    ("t,value\n0,1\n1,2\n3,3\n2,1\n", "data rows 3 and 4 go from 3 to 2: sort the rows by time"),
])
def test_a_time_column_that_does_not_increase_is_refused_in_one_line(tmp_path, rows, message):
    (tmp_path / "bad.csv").write_text(rows)
    with pytest.raises(UserError, match=message):
        ForecastTask(ForecastConfig(data=str(tmp_path / "bad.csv"), time_column="t", window=1))


def test_a_time_column_that_is_not_there_is_refused_in_one_line(tmp_path):
    irregular(tmp_path / "s.csv")
    with pytest.raises(UserError, match="'when' is neither a column of s.csv"):
        ForecastTask(ForecastConfig(data=str(tmp_path / "s.csv"), time_column="when"))


def test_a_timed_ctrnn_needs_the_time_column(tmp_path, capsys):
    irregular(tmp_path / "s.csv")
    code = main(["train", "--data", str(tmp_path / "s.csv"), "--column", "value", "--cell", "ctrnn",
                 "--set", "model.ct_dt=0", "--out", str(tmp_path / "run")])
    assert code == 2 and "task.time_column" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_a_timed_ctrnn_trains_reads_each_steps_duration_and_forecasts_past_the_end(tmp_path, capsys):
    irregular(tmp_path / "s.csv")
    run = tmp_path / "run"
    assert main(["train", "--data", str(tmp_path / "s.csv"), "--column", "value", "--cell", "ctrnn",
                 "--set", "model.ct_dt=0", "--set", "task.time_column=t", "--set", "model.ct_method=rk4",
                 "--epochs", "2", "--quiet", "--out", str(run)]) == 0
    loaded = rnntrain.load_run(run)
    x = ForecastTask(loaded.config.task)._windows["val"].x[:8]
    with torch.no_grad():
        base = loaded.model(x)[0]
        longer = x.clone()
        longer[:, :, -1] *= 3  # the same values, three times as far apart
        assert not torch.allclose(loaded.model(longer)[0], base)
    capsys.readouterr()
    assert main(["forecast", str(run), "--steps", "4"]) == 0
    rows = capsys.readouterr().out.strip().splitlines()[1:]  # under the header
    assert len(rows) == 4 and all(np.isfinite(float(r.split(",")[1])) for r in rows)

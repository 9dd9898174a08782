"""Covariates of a forecast: calendar features of the date column and known-future columns
are inputs the forecast reads, never predicts, inside the data and past its end."""
import numpy as np
import pandas as pd
import pytest
from torch import nn

import rnntrain
from rnntrain.errors import UserError
from rnntrain.tasks.calendar import calendar_cycles, calendar_features
from rnntrain.tasks.forecast import ForecastConfig, ForecastTask
from rnntrain.tasks.series import load_csv


class Echo(nn.Module):
    """Predicts, for every output, the last input row's column ``col`` (horizon 1)."""

    def __init__(self, col: int, outputs: int = 1):
        super().__init__()
        self.col, self.outputs = col, outputs

    def forward(self, x, state=None):
        return x[:, -1, self.col:self.col + 1].repeat(1, self.outputs), state


def test_calendar_cycles_follow_the_rows_spacing():
    spaced = lambda freq: pd.date_range("2020-01-01", periods=30, freq=freq)
    assert calendar_cycles(spaced("h")) == ["hour", "weekday"]
    assert calendar_cycles(spaced("D")) == ["weekday", "yearday"]
    assert calendar_cycles(spaced("W")) == ["yearday"]
    assert calendar_cycles(spaced("MS")) == ["month"]
    assert calendar_cycles(spaced("QS")) == ["month"]
    assert calendar_cycles(spaced("YS")) == []


def test_calendar_features_are_sine_and_cosine_of_the_phase():
    values, names = calendar_features(["2021-01-01", "2021-04-01", "2021-07-01", "2021-10-01"])
    assert names == ["month_sin", "month_cos"]  # quarterly rows: month of year
    np.testing.assert_allclose(values, [[0, 1], [1, 0], [0, -1], [-1, 0]], atol=1e-12)
    values, names = calendar_features(["2024-01-01 06:00", "2024-01-01 12:00", "2024-01-01 18:00"])
    assert names == ["hour_sin", "hour_cos", "weekday_sin", "weekday_cos"]
    np.testing.assert_allclose(values[:, :2], [[1, 0], [0, -1], [-1, 0]], atol=1e-12)  # 6, 12, 18 h
    np.testing.assert_allclose(values[:, 2], 0, atol=1e-12)  # a Monday: weekday 0
    assert calendar_features(["1990", "1991", "1992"])[1] == []  # yearly: no cycle
    assert calendar_features(None)[1] == []


def write(path, frame):
    frame.to_csv(path, index=False)
    return path


def daily(n=120, future=10):
    """Daily rows: y_t = temp_t; temp known for ``future`` rows past the last y."""
    dates = pd.date_range("2021-01-04", periods=n + future, freq="D")
    temp = np.round(np.sin(np.arange(n + future) / 3.0) * 10, 4)
    y = temp.copy()
    y[n:] = np.nan
    return pd.DataFrame({"date": dates.strftime("%Y-%m-%d"), "y": y, "temp": temp})


def test_trailing_rows_without_targets_are_the_known_future_not_the_series(tmp_path):
    path = write(tmp_path / "d.csv", daily(n=50, future=4))
    s = load_csv(path, ["y", "temp"], known_future=["temp"])
    assert len(s) == 50 and s.future.shape == (4, 2) and np.isnan(s.future[:, 0]).all()
    assert list(s.future_time) == ["2021-02-23", "2021-02-24", "2021-02-25", "2021-02-26"]
    with pytest.raises(UserError, match="'y'.*last 4 rows.*--future-column"):
        load_csv(path, ["y", "temp"])  # without known-future columns a gap is a gap


def test_a_known_future_column_is_read_inside_the_data_and_past_its_end(tmp_path):
    frame = daily(n=120, future=10)
    task = ForecastTask(ForecastConfig(data=str(write(tmp_path / "d.csv", frame)), targets=("y",),
                                       future=("temp",), scale="none", normalize="none", window=5))
    assert task.inputs == ["y", "temp"] and task.outputs == ["y"] and task.future_rows.shape[0] == 10
    echo_temp = Echo(col=1)  # y_{t+1} = temp_t: the window's last known temperature
    temp = frame["temp"].to_numpy()
    inside = task.recursive_forecast(echo_temp, start_row=100, steps=25)  # runs 5 rows past the end
    np.testing.assert_allclose(inside[:, 0], temp[99:124], atol=1e-5)
    past = task.forecast_future(echo_temp, 11)  # its last row is forecast, never read
    np.testing.assert_allclose(past[:, 0], temp[119:130], atol=1e-5)
    with pytest.raises(UserError, match="12 rows past the end.*temp.*10 such row.*--steps 11"):
        task.forecast_future(echo_temp, 12)


def test_known_future_inputs_keep_their_values_under_window_normalisation(tmp_path):
    task = ForecastTask(ForecastConfig(data=str(write(tmp_path / "d.csv", daily())), targets=("y",),
                                       future=("temp",), scale="none", normalize="level", window=5))
    batch = next(task.batches("val", 4))
    raw = task._windows["val"].x[:4]
    np.testing.assert_allclose(batch.inputs[:, :, 1], raw[:, :, 1])  # temp as it is
    np.testing.assert_allclose(batch.inputs[:, -1, 0], 0)  # y relative to the window's last


def test_calendar_columns_are_known_future_inputs_continued_past_the_end(tmp_path):
    dates = pd.date_range("2015-01-01", periods=60, freq="MS")
    frame = pd.DataFrame({"month": dates.strftime("%Y-%m"), "sales": np.arange(60.0)})
    task = ForecastTask(ForecastConfig(data=str(write(tmp_path / "m.csv", frame)), calendar="auto",
                                       scale="none", normalize="none", window=3))
    assert task.inputs == ["sales", "month_sin", "month_cos"] and task.outputs == ["sales"]
    echo_sin = Echo(col=1)  # predicts the last row's month_sin
    out = task.forecast_future(echo_sin, 4)[:, 0]  # dates 2020-01 .. 2020-04
    # step 1 reads the last row (2019-12), step k the (k-1)-th future month
    expected = np.sin(2 * np.pi * np.array([11, 0, 1, 2]) / 12)
    np.testing.assert_allclose(out, expected, atol=1e-6)
    state = task.state_dict()
    fresh = ForecastTask.for_inference(task.config, state)
    np.testing.assert_allclose(fresh.forecast_future(echo_sin, 4)[:, 0], expected, atol=1e-6)


def test_calendar_features_let_a_model_forecast_a_weekday_pattern(tmp_path):
    """A daily series whose level depends only on the weekday and noise: with the calendar
    the forecast knows which day comes next; both runs are otherwise identical."""
    rng = np.random.default_rng(0)
    dates = pd.date_range("2020-01-01", periods=700, freq="D")
    y = np.where(dates.dayofweek >= 5, 10.0, 0.0) + rng.normal(0, 1, len(dates))
    path = write(tmp_path / "w.csv", pd.DataFrame({"date": dates.strftime("%Y-%m-%d"), "y": y}))
    mase = {}
    for calendar in ("none", "auto"):
        config = rnntrain.load_config(base={"task.data": str(path), "task.calendar": calendar,
                                            "task.window": 3, "model.hidden": 16, "train.epochs": 15,
                                            "optim.lr": 3e-3})
        mase[calendar] = rnntrain.train(config).summary["metrics"]["test"]["mase"]
    assert mase["auto"] < 0.6 * mase["none"], mase


def test_the_cli_forecasts_from_new_data_with_its_known_future_rows(tmp_path, capsys):
    from rnntrain.cli.main import main
    path = write(tmp_path / "d.csv", daily(n=200, future=0))
    run = tmp_path / "run"
    assert main(["train", "--data", str(path), "--target", "y", "--future-column", "temp", "--calendar",
                 "--epochs", "2", "--out", str(run), "--quiet"]) == 0
    new = write(tmp_path / "new.csv", daily(n=60, future=6))
    capsys.readouterr()
    assert main(["forecast", str(run), "--data", str(new), "--steps", "7"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "step,date,y" and len(lines) == 8 and lines[1].startswith("1,2021-03-05,")
    assert main(["forecast", str(run), "--data", str(new), "--steps", "8"]) == 2
    assert "--steps 7" in capsys.readouterr().err
    assert main(["generate", str(run)]) == 2  # past the end, generation has no known-future rows
    assert "known-future" in capsys.readouterr().err
    assert main(["train", "--task", "classify", "--dataset", "waves", "--head", "gaussian"]) == 2
    assert "--head does not apply to a classify run" in capsys.readouterr().err


def test_a_target_cannot_also_be_known_future():
    with pytest.raises(UserError, match="both targets and known-future"):
        ForecastTask(ForecastConfig(series="oscillator", targets=("x", "F"), future=("F",), length=200))

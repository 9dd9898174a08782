"""Time-series sources: the seed signals, the RK4 oscillator, CSV loading and its errors."""
import math

import numpy as np
import pytest
import torch

from rnntrain.errors import UserError
from rnntrain.tasks.series import (builtin_series, load_csv, noisy_sine, oscillator, sine,
                                   split_bounds)


# ---------------------------------------------------------------- built-in series

def test_sine_is_the_seed_pytorch_signal():
    s = sine(1000)
    assert s.values.shape == (1000, 1) and s.values.dtype == np.float64 and s.columns == ["sin"]
    np.testing.assert_allclose(s.values[:, 0], np.sin(np.linspace(0, 4 * np.pi, 1000)), atol=0)
    seed = torch.sin(torch.linspace(0, 4 * np.pi, 1000))  # the seed program, float32
    np.testing.assert_allclose(s.values[:, 0], seed.numpy(), atol=2e-6)
    assert s.time is None


def test_noisy_sine_mean_is_sine_mean_plus_one_and_seeded():
    a, b, c = noisy_sine(1000, seed=0), noisy_sine(1000, seed=0), noisy_sine(1000, seed=1)
    t = np.arange(1000)
    noise = a.values[:, 0] - np.sin(0.02 * t)
    assert noise.min() >= 0 and noise.max() <= 2  # 2 U(0, 1)
    assert abs(noise.mean() - 1.0) < 0.06  # mean of 2U is 1; sd of the mean ~0.018
    np.testing.assert_array_equal(a.values, b.values)
    assert not np.allclose(a.values, c.values)
    assert a.columns == ["x"]


def test_oscillator_rk4_matches_undriven_analytic_solution():
    eta, dt = 0.2, 0.05
    s = oscillator(length=2000, dt=dt, eta=eta, force=0.0, x0=1.0, v0=0.0)
    t = np.arange(2000) * dt
    wd = math.sqrt(1 - eta ** 2 / 4)  # underdamped: x = e^{-ηt/2}(A cos wd t + B sin wd t)
    A, B = 1.0, (eta / 2) / wd
    decay = np.exp(-eta * t / 2)
    x = decay * (A * np.cos(wd * t) + B * np.sin(wd * t))
    v = decay * ((-eta / 2) * (A * np.cos(wd * t) + B * np.sin(wd * t))
                 + wd * (-A * np.sin(wd * t) + B * np.cos(wd * t)))
    assert s.columns == ["x", "v", "F"]
    assert np.abs(s.values[:, 0] - x).max() < 1e-6
    assert np.abs(s.values[:, 1] - v).max() < 1e-6
    np.testing.assert_array_equal(s.values[:, 2], 0.0)


def test_undriven_oscillator_energy_never_increases():
    s = oscillator(length=2000, force=0.0)
    energy = 0.5 * (s.values[:, 0] ** 2 + s.values[:, 1] ** 2)  # dE/dt = -η v² <= 0
    assert np.all(np.diff(energy) <= 1e-12)
    assert energy[-1] < 1e-3 * energy[0]  # e^{-η t} over t = 100


def test_driven_oscillator_settles_to_resonance_amplitude():
    s = oscillator()  # force 1, ω 0.5, η 0.2, t up to 100: transients decay like e^{-0.1 t}
    np.testing.assert_allclose(s.values[:, 2], np.cos(0.5 * np.arange(2000) * 0.05))
    amplitude = 1.0 / math.sqrt((1 - 0.5 ** 2) ** 2 + (0.2 * 0.5) ** 2)
    last_period = s.values[-int(2 * np.pi / 0.5 / 0.05):, 0]
    assert abs(np.abs(last_period).max() - amplitude) < 1e-3


def test_builtin_series_dispatches_and_rejects_unknown_names():
    assert builtin_series("sine", 50).values.shape == (50, 1)
    assert builtin_series("noisy-sine", 50, seed=3).values.shape == (50, 1)
    assert builtin_series("oscillator", 50).values.shape == (50, 3)
    with pytest.raises(UserError, match="sine, noisy-sine, oscillator"):
        builtin_series("cosine", 50)


def test_split_bounds_tile_the_sequence_in_order():
    assert split_bounds(1000, (0.8, 0.2, 0.0)) == {"train": (0, 800), "val": (800, 1000),
                                                   "test": (1000, 1000)}
    b = split_bounds(101, (0.7, 0.2, 0.1))
    assert b["train"][0] == 0 and b["train"][1] == b["val"][0] and b["val"][1] == b["test"][0]
    assert b["test"][1] == 101
    assert split_bounds(10, (1.0,)) == {"train": (0, 10), "val": (10, 10), "test": (10, 10)}


# ---------------------------------------------------------------- CSV

def write(tmp_path, text, name="data.csv"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("date", ["2020-01-31", "2020-01-31 12:00", "2020-01-31T12:00:00",
                                  "31/01/2020", "2020/01/31"])
def test_csv_date_column_is_time_not_a_feature(tmp_path, date):
    path = write(tmp_path, f"date,a,b\n{date},1,2\n{date},3,4.5\n")
    s = load_csv(path)
    assert s.columns == ["a", "b"]
    np.testing.assert_array_equal(s.values, [[1, 2], [3, 4.5]])
    assert list(s.time) == [date, date]


def test_csv_integer_column_is_dates_only_when_named_as_dates(tmp_path):
    s = load_csv(write(tmp_path, "id,x\n20200131,1\n20200201,2\n"))
    assert s.columns == ["id", "x"] and s.time is None  # a number, whatever it looks like
    s = load_csv(write(tmp_path, "date,co2\n19580329,316.1\n19580405,317.3\n"))  # statsmodels' co2
    assert s.columns == ["co2"] and list(s.time) == ["1958-03-29", "1958-04-05"]
    s = load_csv(write(tmp_path, "day,x\n12345678,1\n20200201,2\n"))  # not all valid dates
    assert s.columns == ["day", "x"] and s.time is None
    s = load_csv(write(tmp_path, "year,volume\n1871,1120\n1872,1160\n"))  # statsmodels' nile
    assert s.columns == ["volume"] and list(s.time) == ["1871", "1872"]


def test_csv_column_selection_ignores_unselected_text_columns(tmp_path):
    path = write(tmp_path, "date,city,temp,rain\n2020-01-01,Oslo,-3,1\n2020-01-02,Oslo,-1,0\n")
    s = load_csv(path, columns=["rain", "temp"])
    assert s.columns == ["rain", "temp"]
    np.testing.assert_array_equal(s.values, [[1, -3], [0, -1]])


def test_csv_missing_file(tmp_path):
    with pytest.raises(UserError, match="not found.*--data"):
        load_csv(tmp_path / "nope.csv")


def test_csv_empty_file_and_header_only(tmp_path):
    with pytest.raises(UserError, match="empty.*header"):
        load_csv(write(tmp_path, ""))
    with pytest.raises(UserError, match="no data rows"):
        load_csv(write(tmp_path, "a,b\n"))


def test_csv_non_numeric_value_names_column_row_value_and_fix(tmp_path):
    path = write(tmp_path, "date,city,temp\n2020-01-01,Oslo,1\n2020-01-02,Oslo,x7\n")
    with pytest.raises(UserError) as err:
        load_csv(path, columns=["temp"])
    msg = str(err.value)
    assert "'temp'" in msg and "row 2" in msg and "'x7'" in msg and "--column" in msg
    assert "\n" not in msg
    with pytest.raises(UserError, match="'city'.*'Oslo'.*--column"):
        load_csv(path)  # no selection: every non-date column must be numeric


def test_csv_missing_values_fail_with_interpolate_hint(tmp_path):
    path = write(tmp_path, "a,b\n1,2\n,3\nnan,4\n5,5\n")
    with pytest.raises(UserError, match="'a'.*2 missing.*--interpolate"):
        load_csv(path)
    path = write(tmp_path, "a,b\n1,2\n,3\nnan,4\n")  # a trailing gap: the future of b?
    with pytest.raises(UserError, match="'a'.*empty in its last 2 rows.*--future-column"):
        load_csv(path)


def test_csv_interpolation_is_exactly_linear_with_nearest_edges(tmp_path):
    path = write(tmp_path, "a,b\n,0\n2,0\n,0\nNaN,0\n8,0\n,0\n")
    s = load_csv(path, interpolate=True)
    np.testing.assert_allclose(s.values[:, 0], [2, 2, 4, 6, 8, 8])


def test_csv_not_utf8_suggests_iconv(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes("städ,x\n1,2\n".encode("latin-1"))
    with pytest.raises(UserError, match="not UTF-8.*iconv"):
        load_csv(path)


def test_csv_unknown_column_lists_available_columns(tmp_path):
    path = write(tmp_path, "a,b\n1,2\n")
    with pytest.raises(UserError, match="unknown column.*'c'.*available columns: a, b"):
        load_csv(path, columns=["a", "c"])


def test_a_csv_without_a_header_is_refused_in_one_line(tmp_path):
    path = tmp_path / "noheader.csv"
    path.write_text("1.5,2.0\n1.7,2.1\n1.9,2.4\n")
    with pytest.raises(UserError, match="no header row.*x1,x2"):
        load_csv(path)
    dated = tmp_path / "dated.csv"
    dated.write_text("2020-01-01,5\n2020-01-02,6\n")
    with pytest.raises(UserError, match="no header row"):
        load_csv(dated)


@pytest.mark.parametrize("token", ["NA", "NULL", "nan", "n/a", "-"])
def test_common_missing_value_markers_are_missing_values(tmp_path, token):
    path = tmp_path / "gaps.csv"
    path.write_text(f"x\n1\n{token}\n3\n")
    with pytest.raises(UserError, match="missing"):
        load_csv(path)
    assert load_csv(path, interpolate=True).values[:, 0].tolist() == [1.0, 2.0, 3.0]


# ---------------------------------------------------------------- files as users have them
@pytest.mark.parametrize("text, expected", [
    ("day;temp\n01.01.2020;3,5\n02.01.2020;4,25\n03.01.2020;-1,0\n", [3.5, 4.25, -1.0]),  # ; and decimal commas
    ("day\ttemp\n2020-01-01\t3.5\n2020-01-02\t4.25\n2020-01-03\t-1\n", [3.5, 4.25, -1.0]),  # tabs
    ('day,sales\n2020-01,"1,234.5"\n2020-02,"2,000"\n2020-03,17\n', [1234.5, 2000.0, 17.0]),  # thousands
    ("day;sales\n2020-01;1.234,5\n2020-02;2.000,0\n2020-03;17,25\n", [1234.5, 2000.0, 17.25]),  # both, European
    ("month|y\n1991 Jul|1\n1991 Aug|NULL\n1991 Sep|3\n", [1.0, 2.0, 3.0]),  # pipes, month names, NULL
])
def test_csv_dialects_are_read_as_users_write_them(tmp_path, text, expected):
    path = tmp_path / "f.csv"
    path.write_text(text, encoding="utf-8")
    series = load_csv(path, interpolate=True)
    assert series.values[:, 0].tolist() == expected and series.time is not None and len(series.columns) == 1


def test_excel_and_parquet_files_are_read_like_csv(tmp_path):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("openpyxl")
    pytest.importorskip("pyarrow")
    frame = pd.DataFrame({"date": ["2020-01-01", "2020-01-02", "2020-01-03"], "y": [1.5, 2.5, 3.5]})
    frame.to_excel(tmp_path / "f.xlsx", index=False)
    frame.to_parquet(tmp_path / "f.parquet", index=False)
    for name in ("f.xlsx", "f.parquet"):
        series = load_csv(tmp_path / name)
        assert series.columns == ["y"] and series.values[:, 0].tolist() == [1.5, 2.5, 3.5]
        assert list(series.time) == ["2020-01-01", "2020-01-02", "2020-01-03"]


def test_a_row_with_more_fields_than_the_header_is_one_line(tmp_path):
    path = tmp_path / "ragged.csv"
    path.write_text("a,b\n1,2\n3,4,5\n")
    with pytest.raises(UserError, match="line 3.*fix the row"):
        load_csv(path)


def test_rows_dated_newest_first_are_put_in_time_order(tmp_path):
    path = write(tmp_path, "Date,Close\n19-Sep-03,29.96\n18-Sep-03,29.50\n17-Sep-03,28.40\n")
    s = load_csv(path)  # matplotlib's msft.csv layout: a finance export, newest first
    np.testing.assert_array_equal(s.values[:, 0], [28.40, 29.50, 29.96])
    assert list(s.time) == ["17-Sep-03", "18-Sep-03", "19-Sep-03"]


def test_business_days_have_a_season_of_five_rows():
    from rnntrain.tasks.baselines import season_length
    import pandas as pd
    days = pd.bdate_range("2021-01-04", periods=30).strftime("%Y-%m-%d")
    assert season_length(list(days)) == 5
    assert season_length(list(pd.date_range("2021-01-04", periods=30).strftime("%Y-%m-%d"))) == 7

"""Time series sources: built-in signals (the seed programs) and CSV files.

Every source returns a :class:`Series`: a float64 matrix of shape (T, C), one row per
time step and one column per named variable. A date column of a CSV is kept apart in
``Series.time`` (strings, for plot labels) and is never a feature.

Also here: :func:`split_bounds`, the one place sequences (series rows, text characters)
are cut into train/val/test in time order.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..config.schema import check
from ..errors import UserError
from .table import MISSING, Table, numbers, read_table

BUILTIN_SERIES = ("sine", "noisy-sine", "oscillator",
                  "mackey-glass", "mackey-glass-30", "lorenz", "narma10")  # the last four: tasks/chaotic.py


@dataclass
class Series:
    """A multivariate time series.

    values:  (T, C) float64, row t = time step t.
    columns: C column names.
    time:    (T,) strings of the CSV's date column, or None; never a feature.
    name:    where it came from (built-in name or file name), for labels.
    future:  (F, C) known-future rows after the last observation (NaN: unknown), or None.
    """

    values: np.ndarray
    columns: List[str]
    time: Optional[np.ndarray] = None
    name: str = ""
    # rows after the last observation that hold known-future values only (F, C), NaN
    # where unknown, and their date labels (a file's trailing rows with empty targets)
    future: Optional[np.ndarray] = None
    future_time: Optional[np.ndarray] = None

    def __len__(self) -> int:
        return self.values.shape[0]


# ---------------------------------------------------------------- built-in series

def sine(length: int = 1000) -> Series:
    """The seed PyTorch example: ``t = linspace(0, 4π, length)``, x(t) = sin(t). Column "sin"."""
    t = np.linspace(0.0, 4 * np.pi, length)
    return Series(np.sin(t)[:, None], ["sin"], None, "sine")


def noisy_sine(length: int = 1000, seed: int = 0) -> Series:
    """The seed Keras example: x_t = sin(0.02 t) + 2 u_t, u_t ~ U(0, 1), t = 0..length-1.

    The noise comes from ``numpy.random.default_rng(seed)``: same seed, same series.
    Column "x".
    """
    t = np.arange(length, dtype=np.float64)
    u = np.random.default_rng(seed).random(length)
    return Series((np.sin(0.02 * t) + 2.0 * u)[:, None], ["x"], None, "noisy-sine")


def oscillator(length: int = 2000, dt: float = 0.05, eta: float = 0.2, force: float = 1.0,
               omega: float = 0.5, x0: float = 1.0, v0: float = 0.0) -> Series:
    r"""The seed's damped driven oscillator, integrated with classic 4th-order Runge-Kutta.

    .. math::  \ddot x + \eta \dot x + x = F(t),\qquad F(t) = \text{force}\cos(\omega t)

    written as the first-order system dx/dt = v, dv/dt = F(t) - η v - x, stepped by RK4
    (local error O(dt^5), global O(dt^4)) from x(0) = x0, v(0) = v0. Row i is time i·dt;
    columns "x", "v", "F" (the known drive, useful as an input).
    """
    def deriv(t: float, x: float, v: float) -> Tuple[float, float]:
        return v, force * math.cos(omega * t) - eta * v - x

    out = np.empty((length, 3))
    x, v = float(x0), float(v0)
    for i in range(length):
        t = i * dt
        out[i] = (x, v, force * math.cos(omega * t))
        k1x, k1v = deriv(t, x, v)
        k2x, k2v = deriv(t + dt / 2, x + dt / 2 * k1x, v + dt / 2 * k1v)
        k3x, k3v = deriv(t + dt / 2, x + dt / 2 * k2x, v + dt / 2 * k2v)
        k4x, k4v = deriv(t + dt, x + dt * k3x, v + dt * k3v)
        x += dt / 6 * (k1x + 2 * k2x + 2 * k3x + k4x)
        v += dt / 6 * (k1v + 2 * k2v + 2 * k3v + k4v)
    return Series(out, ["x", "v", "F"], None, "oscillator")


def builtin_series(name: str, length: int = 1000, seed: int = 0) -> Series:
    """The built-in series ``name`` (one of :data:`BUILTIN_SERIES`) with ``length`` rows."""
    if name == "sine":
        return sine(length)
    if name == "noisy-sine":
        return noisy_sine(length, seed)
    if name == "oscillator":
        return oscillator(length)
    from . import chaotic  # chaotic and benchmark series (echo state network benchmarks)
    if name in ("mackey-glass", "mackey-glass-30"):
        tau = 30.0 if name.endswith("30") else 17.0
        return Series(chaotic.mackey_glass(length, tau=tau, seed=seed), ["x"], None, name)
    if name == "lorenz":
        return Series(chaotic.lorenz(length), ["x", "y", "z"], None, name)
    if name == "narma10":
        return Series(chaotic.narma10(length, seed), ["u", "y"], None, name)
    raise UserError(f"unknown series '{name}'; choose one of: {', '.join(BUILTIN_SERIES)}, "
                    f"or give a CSV file with --data")


# ---------------------------------------------------------------- splits

def check_split(fractions: Sequence[float], where: str = "split") -> None:
    """Validate train/val/test fractions: 1 to 3 values, each ≥ 0, summing to 1, train > 0."""
    check(1 <= len(fractions) <= 3,
          f"{where} must list 1 to 3 fractions (train, val, test), got {list(fractions)}")
    check(all(f >= 0 for f in fractions), f"{where} fractions must be >= 0, got {list(fractions)}")
    check(abs(sum(fractions) - 1.0) < 1e-6,
          f"{where} fractions must sum to 1, got {list(fractions)} (sum {sum(fractions):g})")
    check(fractions[0] > 0, f"{where} needs a train fraction > 0, got {list(fractions)}")


def split_bounds(n: int, fractions: Sequence[float]) -> Dict[str, Tuple[int, int]]:
    """[start, stop) of train, val and test in a sequence of ``n`` items, in order.

    Cumulative rounding, so the three parts always tile 0..n exactly; a zero fraction
    gives an empty part (the seed's 1000 rows at (0.8, 0.2) -> 0..800, 800..1000).
    """
    f = list(fractions) + [0.0] * (3 - len(fractions))
    b1 = n if f[1] == 0 and f[2] == 0 else min(n, round(n * f[0]))
    b2 = n if f[2] == 0 else min(n, max(b1, round(n * (f[0] + f[1]))))
    return {"train": (0, b1), "val": (b1, b2), "test": (b2, n)}


# ---------------------------------------------------------------- CSV

_DATE_FORMATS = ("%d/%m/%Y", "%Y/%m/%d", "%d/%m/%Y %H:%M", "%Y/%m/%d %H:%M",
                 "%d/%m/%Y %H:%M:%S", "%Y/%m/%d %H:%M:%S",
                 "%Y-%m", "%Y/%m", "%Y %b", "%b %Y", "%B %Y", "%d.%m.%Y", "%d.%m.%Y %H:%M",  # months; dots
                 "%b-%d-%Y", "%d-%b-%Y", "%d %b %Y", "%b %d, %Y",  # Jan-1-1995, 01-Jan-1995, 1 Jan 1995
                 "%d-%b-%y")  # 19-Sep-03 (finance exports)
# a column of 8-digit numbers is dates (YYYYMMDD) only under one of these names; anywhere
# else 20200131 stays a number
_DATE_NAMES = frozenset({"date", "day", "time", "timestamp", "datetime", "ds", "period"})
_YEAR_NAMES = frozenset({"year", "yr"})  # ... and of 4-digit numbers (1871, 1872 ...) only under these


_QUARTER = re.compile(r"^(\d{4})\s*-?\s*Q([1-4])$", re.IGNORECASE)  # 1970 Q1, 1970Q1, 1970-Q1


def parse_date(text: str) -> Optional[datetime]:
    """ISO 8601 date/datetime, or 31/01/2020, 2020/01/31, 31.01.2020 (optionally with a
    time), a month (2020-01, 2020/01, 1991 Jul, Jul 1991) or a quarter (1970 Q1, at its
    first month); None for anything else."""
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        pass
    for fmt in _DATE_FORMATS:
        try:
            return datetime.strptime(text, fmt)
        except ValueError:
            pass
    q = _QUARTER.match(text.strip())
    return datetime(int(q.group(1)), 3 * int(q.group(2)) - 2, 1) if q else None


def future_dates(labels: Optional[Sequence[str]], steps: int) -> Optional[List[str]]:
    """The ``steps`` dates after the last of ``labels`` (dates as the data writes them), at
    the data's frequency (pandas' inferred calendar frequency, e.g. month starts; else the
    median spacing); None when the labels are not dates."""
    import pandas as pd

    if labels is None or len(labels) < 2:
        return None
    parsed = [parse_date(str(t)) for t in list(labels)[-10:]]
    if any(p is None for p in parsed):
        return None
    index = pd.DatetimeIndex(parsed)
    freq = pd.infer_freq(index) if len(index) >= 3 else None
    if freq is not None:
        future = pd.date_range(index[-1], periods=steps + 1, freq=freq)[1:]
    else:
        step = pd.Series(index).diff().median()
        future = pd.DatetimeIndex([index[-1] + step * (k + 1) for k in range(steps)])
    timed = any(t.hour or t.minute or t.second for t in future) or any(p.hour or p.minute for p in parsed)
    return [t.strftime("%Y-%m-%d %H:%M" if timed else "%Y-%m-%d") for t in future]


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def _is_date(text: str) -> bool:
    """A date by :func:`parse_date`, and not a number (20200131 stays a number)."""
    try:
        float(text)
        return False  # 20200131 is a number first: never turn a numeric column into dates
    except ValueError:
        pass
    return parse_date(text) is not None


def _labels(cells: np.ndarray) -> np.ndarray:
    """Time labels as text (years read as numbers print without a decimal point)."""
    if cells.dtype != object:
        return np.array([f"{v:.0f}" if float(v).is_integer() else f"{v}" for v in cells])
    return cells.astype(str)


def _index_kind(cells: Sequence[str]) -> Optional[str]:
    """"counter" for 0, 1, 2 ... or 1, 2, 3 ...; "years" for consecutive four-digit years;
    None for anything else."""
    try:
        v = np.array([int(c) for c in cells])
    except ValueError:
        return None
    if len(v) < 2 or not np.all(np.diff(v) == 1):
        return None
    if v[0] in (0, 1):
        return "counter"
    return "years" if 1000 <= v[0] and v[-1] <= 2999 else None


def _interpolate(col: np.ndarray) -> np.ndarray:
    """Linear interpolation over row index (evenly spaced rows); edges take the nearest value."""
    ok = ~np.isnan(col)
    rows = np.arange(len(col))
    return np.interp(rows, rows[ok], col[ok])  # np.interp holds the end values constant


def _observed_rows(raw: np.ndarray, predicted: Sequence[int]) -> int:
    """The rows before the trailing run in which every ``predicted`` column is empty (rows
    that give known-future values only, or blank rows)."""
    if not predicted:
        return len(raw)
    filled = ~np.isnan(raw[:, list(predicted)]).all(1)
    return int(np.flatnonzero(filled)[-1]) + 1 if filled.any() else len(raw)


HUGE = 1e150  # the largest magnitude a data column may hold (its square must stay finite)


def load_csv(path, columns: Optional[Sequence[str]] = None, interpolate: bool = False,
             known_future: Sequence[str] = (), table: Optional[Table] = None) -> Series:
    """Read a time series from a table (:mod:`.table`: CSV in any common dialect, Excel,
    Parquet; one header row, one row per time step).

    A column whose every non-empty value is a date/datetime becomes ``Series.time``; a first
    column without a name is a row index (a counter: dropped; consecutive years: the time).
    ``columns`` selects the feature columns (in that order); only those must be numeric.
    ``None`` selects every other column. Empty cells, NA, NULL, NaN, n/a, - and ? are
    missing values: an error, or with ``interpolate`` filled linearly in row order (edges:
    nearest value). Rows whose dates run newest first are put in time order. Trailing rows in which every column but the ``known_future`` ones is empty
    are not part of the series: they are its known future (``Series.future``: the
    known-future columns' values there; a blank last line is simply dropped). ``table``: the
    rows already read (one series of a long file; ``path`` then names it in messages). Every
    problem raises a one-line :class:`UserError` naming the fix.
    """
    path = Path(path)
    table = read_table(path) if table is None else table
    header, names = table.header, table.names
    if all(_is_number(h) or _is_date(h) for h in header):
        raise UserError(f"{path} has no header row: its first line ({','.join(header)[:60]}) holds "
                        f"values, not column names; add a line naming the columns, e.g. "
                        f"{','.join(f'x{j + 1}' for j in range(len(header)))}")
    date_cols = [n for n in names if _dates(table.columns[n]) or _compact_dates(n, table.columns[n])]
    index_name = None
    if not header[0] and len(header) > 1:
        kind = _index_kind(table.columns[names[0]])
        if kind is not None:
            index_name = names[0]
            if kind == "years" and not date_cols:
                date_cols = [names[0]]
    if columns is None:
        chosen = [n for n in names if n not in date_cols and n != index_name]
        check(bool(chosen), f"{path} has no numeric columns (only dates: {date_cols}); "
                            f"add a column of values")
    else:  # a date column asked for (as the time: task.time_column) stays the time
        chosen = [c for c in columns if c not in date_cols]
        check(bool(chosen), f"the chosen column(s) of {path} are dates, not values: choose columns of values")
        unknown = [c for c in chosen if c not in names]
        check(not unknown, f"unknown column(s) {unknown} in {path}; available columns: "
                           f"{', '.join(names)}")
    raw = np.empty((len(table), len(chosen)))
    for k, name in enumerate(chosen):
        raw[:, k], bad = numbers(table, name)
        if bad is not None:
            raise UserError(f"column '{name}' of {path} has a non-numeric value {bad[1]!r} "
                            f"in data row {bad[0] + 1}; drop the column or choose "
                            f"numeric columns with --column")
        if np.isinf(raw[:, k]).any():
            i = int(np.argmax(np.isinf(raw[:, k])))
            raise UserError(f"column '{name}' of {path} has an infinite value "
                            f"{str(table.columns[name][i])!r} in data row {i + 1}; replace it with a finite number")
        big = np.nanmax(np.abs(raw[:, k])) if np.isfinite(raw[:, k]).any() else 0.0
        if big > HUGE:  # scaling squares the values: beyond ~1e154 float64 overflows to inf
            raise UserError(f"column '{name}' of {path} has values as large as {big:.3g}, where squaring them "
                            f"(for scaling and errors) overflows float64; divide the column by a power of ten "
                            f"(e.g. 1e{int(np.log10(big)) - 3}) first")
    time = _labels(table.columns[date_cols[0]]) if date_cols else None
    if time is not None and _compact_dates(date_cols[0], table.columns[date_cols[0]]) \
            and date_cols[0].strip().lower() not in _YEAR_NAMES:
        time = np.array([f"{t[:4]}-{t[4:6]}-{t[6:8]}" for t in time])  # 19580329 -> 1958-03-29
    if time is not None and _newest_first(time):  # finance exports: put time forwards
        raw, time = raw[::-1].copy(), time[::-1].copy()
    T = _observed_rows(raw, [k for k, c in enumerate(chosen) if c not in known_future])
    values = raw[:T].copy()
    for k, name in enumerate(chosen):
        missing = np.isnan(values[:, k])
        if missing.any():
            first = int(np.argmax(missing))
            check(not missing.all(), f"column '{name}' of {path} has no values; "
                                     f"drop it or choose other columns with --column")
            trailing = bool(missing[first:].all()) and first > 0
            if trailing and not interpolate:  # the future of the other columns, not gaps
                raise UserError(f"column '{name}' of {path} is empty in its last {T - first} rows, where other "
                                f"columns have values; if those are known-future inputs, name them with "
                                f"--future-column, else drop the rows")
            if not interpolate:
                raise UserError(f"column '{name}' of {path} has {int(missing.sum())} missing "
                                f"value(s) (first in data row {first + 1}); "
                                f"fill them in the file, or pass --interpolate to fill them "
                                f"linearly")
            values[:, k] = _interpolate(values[:, k])
    if T < len(raw):  # the rows past the last observation: known-future values only
        return Series(values, chosen, None if time is None else time[:T], path.name,
                      future=raw[T:], future_time=None if time is None else time[T:])
    return Series(values, chosen, time, path.name)


def _newest_first(labels: np.ndarray, sample: int = 200) -> bool:
    """Whether date labels run backwards in time (checked on a sample spread over them)."""
    if len(labels) < 2:
        return False
    picked = [parse_date(str(t)) for t in labels[np.linspace(0, len(labels) - 1, min(sample, len(labels))).astype(int)]]
    return None not in picked and all(a > b for a, b in zip(picked, picked[1:]))


def _compact_dates(name: str, cells: np.ndarray) -> bool:
    """Whether a column named like a date (:data:`_DATE_NAMES`) holds YYYYMMDD numbers, or
    one named "year" holds four-digit years."""
    key = name.strip().lower()
    if key not in _DATE_NAMES and key not in _YEAR_NAMES:
        return False
    fmt = "%Y" if key in _YEAR_NAMES else "%Y%m%d"
    try:
        return len(cells) > 0 and all(datetime.strptime(f"{float(c):.0f}", fmt) for c in cells[:200])
    except (ValueError, TypeError):
        return False


def _dates(cells: np.ndarray, sample: int = 200) -> bool:
    """Whether a text column holds dates: every non-missing cell of a sample spread over it."""
    if cells.dtype != object:
        return False  # numbers (20200131 stays a number)
    filled = [c for c in cells[np.linspace(0, len(cells) - 1, min(sample, len(cells))).astype(int)]
              if c.lower() not in MISSING]
    return bool(filled) and all(_is_date(c) for c in filled)


def load_panel(path, id_column: str, columns: Optional[Sequence[str]] = None, interpolate: bool = False,
               known_future: Sequence[str] = ()) -> Dict[str, Series]:
    """Many series in one long table: a row per (series, time step), the series named by
    ``id_column``, each series' rows in time order. {id: Series} in order of first
    appearance, each read as :func:`load_csv` reads a file (the id column is not a feature)."""
    path = Path(path)
    table = read_table(path)
    check(id_column in table.names, f"series-id column '{id_column}' is not in {path}; its columns: "
                                     f"{', '.join(table.names)}")
    ids = np.asarray([str(v).strip() for v in table.columns[id_column]])
    check(all(i.lower() not in MISSING for i in ids),
          f"column '{id_column}' of {path} has rows without a series id; fill or drop them")
    keep = [j for j, n in enumerate(table.names) if n != id_column]
    header, names = [table.header[j] for j in keep], [table.names[j] for j in keep]
    out: Dict[str, Series] = {}
    for name in dict.fromkeys(str(i) for i in ids):  # plain str: ids go into checkpoints
        rows = np.flatnonzero(ids == name)
        part = Table(header, names, {n: table.columns[n][rows] for n in names}, table.decimal_comma, table.source)
        series = load_csv(f"{path} (series '{name}')", columns, interpolate, known_future, table=part)
        series.name = name
        out[name] = series
    return out


r"""Calendar features from a date column (``task.calendar``): known for any date, past or
future, so a forecast reads them instead of predicting them.

Each cycle c with phase φ_c(t) ∈ [0, 1) becomes two columns, sin(2π φ) and cos(2π φ), so
that the last and the first phase of a cycle are neighbours (December next to January).
Which cycles depend on the spacing of the rows (median gap between dates):

    under a day      hour of day (φ = (hour + minute/60) / 24), day of week (weekday / 7)
    a day            day of week, day of year ((day of year - 1) / 365.25)
    a week           day of year
    a month/quarter  month of year ((month - 1) / 12)
    a year or more   none: a yearly series has no calendar cycle
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import numpy as np

CYCLES = ("hour", "weekday", "yearday", "month")


def calendar_cycles(dates) -> List[str]:
    """The cycles (names from :data:`CYCLES`) worth encoding for rows spaced like ``dates``
    (a pandas DatetimeIndex of at least 2 rows)."""
    seconds = np.asarray(dates.values, dtype="datetime64[s]").astype(np.int64)  # any resolution
    days = float(np.median(np.diff(seconds))) / 86400.0
    if days < 0.99:
        return ["hour", "weekday"]
    if days < 1.5:
        return ["weekday", "yearday"]
    if days < 20:
        return ["yearday"]
    if days < 120:
        return ["month"]
    return []


def parse_dates(labels: Sequence[str]):
    """A pandas DatetimeIndex of date labels as :func:`.series.parse_date` reads them
    (pandas' ISO parser first: fast on millions of rows); None when some label is no date."""
    import pandas as pd

    try:
        return pd.DatetimeIndex(pd.to_datetime(list(labels), format="ISO8601"))
    except (ValueError, TypeError):
        from .series import parse_date
        parsed = [parse_date(str(t)) for t in labels]
        return None if any(p is None for p in parsed) else pd.DatetimeIndex(parsed)


def calendar_features(labels: Optional[Sequence[str]],
                      cycles: Optional[Sequence[str]] = None) -> Tuple[np.ndarray, List[str]]:
    """(values (T, 2·len(cycles)), names) of date labels (T,); ``cycles`` None: from the
    spacing (:func:`calendar_cycles`). No dates or no cycle: a (T, 0) matrix and no names."""
    n = 0 if labels is None else len(labels)
    dates = parse_dates(labels) if n >= (1 if cycles is not None else 2) else None
    if dates is None:
        return np.zeros((n, 0)), []
    cycles = calendar_cycles(dates) if cycles is None else list(cycles)
    phases = {"hour": (dates.hour + dates.minute / 60.0) / 24.0,
              "weekday": dates.dayofweek / 7.0,
              "yearday": (dates.dayofyear - 1) / 365.25,
              "month": (dates.month - 1) / 12.0}
    columns, names = [], []
    for c in cycles:
        phase = 2 * np.pi * np.asarray(phases[c], dtype=np.float64)
        columns += [np.sin(phase), np.cos(phase)]
        names += [f"{c}_sin", f"{c}_cos"]
    return (np.stack(columns, 1) if columns else np.zeros((n, 0))), names

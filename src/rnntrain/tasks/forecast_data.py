"""Where a forecasting task's rows come from and the defaults they imply (a mixin of
:class:`~.forecast.ForecastTask`): the file's columns, calendar features appended, which
columns are inputs, targets and predicted, the first ``task.end`` rows, the train/val/test
bounds (``task.split``, ``task.test_rows``), and the automatic window and normalisation."""
from __future__ import annotations

from typing import List, Optional, Sequence

import numpy as np
import torch

from ..config.schema import check
from ..errors import UserError
from .base import TaskSpec
from .calendar import calendar_features
from .series import Series, load_csv, parse_date, split_bounds


DT = "dt"  # the input column of time steps (task.time_column)
FILE_WINDOW = 12  # task.window = 0 on a file
STRONG_SEASON = 0.8  # autocorrelation of differences at the season lag that makes normalize=auto seasonal


class ForecastData:
    """Reading and cutting the series; uses the task's ``config`` and ``future``."""

    time_unit: Optional[float] = None  # task.time_column: the time between rows that is Δt = 1
    time_numeric = False  # task.time_column is a column of numbers (not the date column)

    @property
    def duration_columns(self) -> List[int]:
        """The columns the scaler leaves in their units: the time steps (a duration)."""
        return [j for j, c in enumerate(self.series.columns) if c == DT]

    def _read(self, path) -> Series:
        """The file's chosen columns (only those must be numeric; no --column: every numeric
        column), the known-future columns among them, trailing target-less rows apart."""
        c = self.config
        wanted = list(dict.fromkeys(c.columns + c.targets + c.future)) if c.columns else None
        if wanted and c.time_column and c.time_column not in wanted:
            wanted.append(c.time_column)  # when it is a column of numbers (not the dates)
        return load_csv(path, wanted, c.interpolate, known_future=c.future)

    def _derived(self, series: Series, cycles: Optional[List[str]] = None) -> Series:
        """The series with its derived known-future inputs appended: calendar features, then
        the time steps (both continued over its future rows)."""
        return self._with_time_steps(self._with_calendar(series, cycles))

    def _with_time_steps(self, series: Series) -> Series:
        """task.time_column: each row's Δt since the row before, in units of the observed
        rows' median gap (``time_unit``, kept for inference; the first row: 1), appended as
        the last column, "dt"; a column of numbers used as the time is not an input itself."""
        name = self.config.time_column
        if not name:
            return series
        cols, future = list(series.columns), series.future
        self.time_numeric = name in cols
        if name in cols:
            j = cols.index(name)
            times = np.concatenate([series.values[:, j], [] if future is None else future[:, j]])
            keep = [k for k in range(len(cols)) if k != j]
            values, cols = series.values[:, keep], [cols[k] for k in keep]
            future = None if future is None else future[:, keep]
        else:
            check(series.time is not None, f"task.time_column '{name}' is neither a column of {series.name} "
                                           f"({', '.join(cols)}) nor its date column")
            stamps = list(series.time) + list([] if future is None else series.future_time)
            dates = [parse_date(str(t)) for t in stamps]  # a future row without a date: unknown
            times = np.array([np.nan if d is None else d.timestamp() for d in dates], dtype=np.float64)
            values = series.values
        T = len(values)
        gaps = np.diff(times)
        bad = np.flatnonzero(~(gaps[:T - 1] > 0))
        if len(bad):
            k = int(bad[0])
            raise UserError(f"task.time_column '{name}' must increase from row to row, but data rows {k + 1} "
                            f"and {k + 2} go from {times[k]:g} to {times[k + 1]:g}: sort the rows by time")
        if self.time_unit is None:  # the observed rows' median gap (a trained run's: kept)
            self.time_unit = float(np.median(gaps[:T - 1]))
        dt = np.concatenate([[1.0], gaps / self.time_unit])[:, None]
        dt[T:][~(dt[T:] > 0)] = np.nan  # future rows without a later time: unknown
        values = np.concatenate([values, dt[:T]], 1)
        future = None if future is None else np.concatenate([future, dt[T:]], 1)
        return Series(values, cols + [DT], series.time, series.name, future, series.future_time)

    @property
    def calendar_names(self) -> List[str]:
        return [f"{cycle}_{f}" for cycle in self.calendar for f in ("sin", "cos")]

    def _with_calendar(self, series: Series, cycles: Optional[List[str]] = None) -> Series:
        """The series with calendar columns appended (task.calendar = auto: cycles from the
        dates' spacing; ``cycles``: a trained run's), over its future rows too."""
        if cycles is None:
            auto = self.config.calendar == "auto" and series.time is not None
            _, names = calendar_features(series.time) if auto else (None, [])
            cycles = list(dict.fromkeys(n.rsplit("_", 1)[0] for n in names))
        self.calendar = cycles
        if not cycles:
            return series
        check(series.time is not None, f"the run reads calendar features ({', '.join(cycles)}) of a "
                                       f"date column; {series.name} has none")
        times = list(series.time) + list(series.future_time if series.future is not None else [])
        feats, names = calendar_features(times, cycles)
        T = len(series)
        values = np.concatenate([series.values, feats[:T]], 1)
        future = None if series.future is None else np.concatenate([series.future, feats[T:]], 1)
        return Series(values, series.columns + names, series.time, series.name, future, series.future_time)

    def _set_columns(self, columns: Sequence[str], inputs: Sequence[str], targets: Sequence[str],
                     future: Sequence[str], outputs: Optional[Sequence[str]] = None) -> None:
        """Inputs (default: every column; known-future ones always), targets (default: the
        inputs that are not known-future), and the predicted columns (module docstring;
        ``outputs``: a saved run's)."""
        self.columns, self.future = list(columns), list(future)
        self.inputs = list(dict.fromkeys(list(inputs) + self.future)) if inputs else list(columns)
        self.targets = list(targets) or [c for c in self.inputs if c not in self.future]
        for kind, names in (("input", self.inputs), ("target", self.targets), ("known-future", self.future)):
            unknown = [c for c in names if c not in self.columns]
            check(not unknown, f"unknown {kind} column(s) {unknown}; available columns: "
                               f"{', '.join(self.columns)}")
        both = [c for c in self.targets if c in self.future]
        check(not both, f"column(s) {both} are both targets and known-future inputs; a known-future "
                        f"column is read, not predicted: drop it from --target or --future-column")
        feedback = set(self.targets) <= set(self.inputs)
        if outputs is None:
            extra = [c for c in self.inputs if c not in self.targets and c not in self.future]
            outputs = self.targets + (extra if feedback else [])
        self.outputs = list(outputs)
        self.in_idx = [self.columns.index(c) for c in self.inputs]
        self.tgt_idx = [self.columns.index(c) for c in self.targets]
        self.out_idx = [self.columns.index(c) for c in self.outputs]
        # where each predicted column / target sits among the inputs (None: some target is
        # not an input, so nothing can be fed back)
        self.out_in_pos = [self.inputs.index(c) for c in self.outputs] if feedback else None
        self.tgt_in_pos = self.out_in_pos[:len(self.targets)] if feedback else None
        # the inputs task.normalize reads relative to the window: all but the known-future ones
        self.norm_pos = [j for j, c in enumerate(self.inputs) if c not in self.future]
        self.noise_mask = torch.tensor([float(c not in self.future) for c in self.inputs], dtype=self.dtype)
        if self.config.decoder:  # H decoder steps of n_outputs values each
            self.spec = TaskSpec(input_size=len(self.inputs), output_size=len(self.outputs),
                                 aligned=False, decoder=True, target_tokens=False)
        else:
            self.spec = TaskSpec(input_size=len(self.inputs),
                                 output_size=self.horizon * len(self.outputs) * self.head.size,
                                 tokens=False, per_step=False, distribution=self.head.interval > 0,
                                 time_input=self.inputs[-1:] == [DT])

    def _first_rows(self, series: Series, end: int) -> Series:
        check(end <= len(series), f"task.end = {end} but the series has {len(series)} rows")
        time = None if series.time is None else series.time[:end]
        rest = series.values[end:]  # later rows: the known future of the rows kept (known columns only)
        future = None
        if self.future:
            future = rest.copy()
            future[:, [series.columns.index(c) for c in series.columns if c not in self.future]] = np.nan
        return Series(series.values[:end], series.columns, time, series.name, future,
                      None if series.time is None else series.time[end:])

    def _bounds(self, n: int):
        """Train/val/test rows: ``task.split`` of all n, or with ``task.test_rows`` the last
        rows as the test split and the rest in ``split``'s train:val ratio."""
        c = self.config
        if not c.test_rows:
            return split_bounds(n, c.split)
        check(c.test_rows < n, f"task.test_rows = {c.test_rows} leaves no rows to train on ({n} rows)")
        f = list(c.split) + [0.0] * (3 - len(c.split))
        head = split_bounds(n - c.test_rows, (f[0] / (f[0] + f[1]), f[1] / (f[0] + f[1])))
        return {"train": head["train"], "val": head["val"], "test": (n - c.test_rows, n)}

    def _check_lengths(self) -> None:
        for split in ("train", "val"):
            a, b = self.bounds[split]
            past = split != "train" and self.reads_past
            need = self.horizon if past else self.window + self.horizon
            what = f"horizon {self.horizon}" if past else \
                f"window + horizon = {self.window} + {self.horizon} = {need}"
            if (split == "train" or b > a) and b - a < need:
                raise UserError(
                    f"the {split} split of {self.series.name} has {b - a} rows of {len(self.series)} but one example "
                    f"needs {what}; use a shorter --window/--horizon or a longer series")

    def _resolve_normalize(self) -> str:
        """task.normalize, auto resolved: level for a file whose targets are all inputs,
        else none (a built-in series: the seed's); UserError where the choice cannot apply."""
        c = self.config
        kind = c.normalize
        if kind == "auto":
            kind = "level" if c.data and self.tgt_in_pos is not None else "none"
            if kind == "level" and self.seasonal and self.season <= self.window:
                kind = "season"
        check(kind == "none" or self.tgt_in_pos is not None,
              f"task.normalize = \"{kind}\" maps each forecast back by its window's values, so "
              f"every target must be an input (targets {self.targets}, inputs {self.inputs}): add the targets "
              f"to --column or set task.normalize = \"none\"")
        check(kind != "season" or 1 < self.season and self.horizon <= self.season <= self.window,
              f"task.normalize = \"season\" centres each forecast step on the value one season ({self.season} "
              f"rows) before it, inside the window: it needs a season > 1 (task.season), window >= season "
              f"(window {self.window}) and horizon <= season (horizon {self.horizon})")
        return kind

    def _strong_season(self, train: np.ndarray) -> bool:
        """Whether the training rows repeat their season closely: the autocorrelation of the
        first differences at the season lag is at least STRONG_SEASON (mean over targets).
        Measured on the series of docs/forecasting.md: 0.92 and 0.96 for the monthly
        airline and electrical-equipment series, where seasonal differencing halves the
        error; 0.61 and 0.30 for half-hourly solar and weekly CO2, where it doubles it."""
        m = self.season
        if m < 2 or self.horizon > m or len(train) < 3 * m + 2 or self.tgt_in_pos is None:
            return False
        d = np.diff(train, axis=0)
        acf = [np.corrcoef(d[m:, j], d[:-m, j])[0, 1] for j in range(d.shape[1])]
        return bool(np.nanmean(acf) >= STRONG_SEASON) if np.isfinite(acf).any() else False

    def _auto_window(self) -> int:
        """task.window = 0: the seed's 20 for a built-in series; for a file 12 rows (measured
        on the series of docs/forecasting.md: 12 beat 6 and 24 under level normalisation),
        or two seasons for a strongly seasonal one (where 24 months beat 12 under seasonal
        differencing); shorter when the training split could not hold two windows with the
        horizon (at least 2)."""
        if not self.config.data:
            return 20
        a, b = self.bounds["train"]
        want = max(FILE_WINDOW, 2 * self.season) if self.seasonal else FILE_WINDOW
        return max(2, min(want, (b - a) // 2 - self.horizon))


def require_change(targets: List[str], train_targets: np.ndarray) -> None:
    """A one-line UserError when a target column never changes over the training rows
    (train_targets (T, n_targets)): nothing to forecast, and MASE and NRMSE are 0/0."""
    flat = [t for t, v in zip(targets, train_targets.T) if np.nanmax(v) == np.nanmin(v)]
    if flat:
        raise UserError(f"target column{'s' if len(flat) > 1 else ''} {', '.join(flat)} never "
                        f"change{'s' if len(flat) == 1 else ''} over the training rows: there is nothing to "
                        f"forecast and its MASE and NRMSE are undefined; name the targets (--target) and keep "
                        f"{flat[0]} as an input only (--column)")

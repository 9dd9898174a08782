r"""Recursive forecasts of a forecasting run (a mixin of :class:`~.forecast.ForecastTask`).

Each call of the model forecasts ``horizon`` rows; the predicted columns are written into
those rows and the window slides on, as the seed does with
``current = cat(current[:, 1:], pred)``. Known-future inputs (``task.future``, calendar
features) are read, not predicted: from the series itself inside it, and past its end from
the file's trailing target-less rows (or the run's copy of them) and the dates' calendar.

With a probabilistic head every call also gives its interval, conditional on the point
forecasts fed back before it: past the first horizon it understates the spread a
forecast accumulates (the model never sees its own errors as uncertainty).
"""
from __future__ import annotations

from typing import Callable, Dict, Optional, Tuple

import numpy as np
import torch

from ..config.schema import check
from ..errors import UserError
from .base import evaluating
from .calendar import calendar_features
from .forecast_data import DT
from .series import future_dates, load_csv

Levels = Dict[float, np.ndarray]  # {quantile level: (steps, n_targets)}, data units


class RecursiveForecasts:
    """``recursive_forecast``, ``forecast_future`` and what they share."""

    def _roll(self, model, context: np.ndarray, steps: int,
              known: Callable[[int, int], np.ndarray]) -> Levels:
        """Forecast ``steps`` rows from ``context`` (W, n_inputs) scaled; known(k, H) ->
        (H, n_inputs) scaled inputs of the k-th..(k+H-1)-th forecast rows (their predicted
        columns are overwritten). Returns the forecast's quantiles, data units."""
        H, P = self.horizon, len(self.outputs)
        cur = torch.as_tensor(context, dtype=self.dtype, device=self.device)[None]  # (1, W, n_in)
        blocks = []
        with evaluating(model):
            for k in range(0, steps, H):
                levels = {q: v.reshape(H, P) for q, v in self.predict_levels(model, cur).items()}
                blocks.append(levels)
                if k + H < steps:
                    rows = torch.as_tensor(known(k, H), dtype=self.dtype, device=self.device)
                    rows[:, self.out_in_pos] = levels[0.5]
                    cur = torch.cat([cur, rows[None]], dim=1)[:, -self.window:]
        return {q: self.to_data_units(torch.cat([b[q] for b in blocks])[:steps]) for q in blocks[0]}

    def require_feedback(self) -> None:
        """UserError unless every target is an input (predictions can be fed back)."""
        check(self.tgt_in_pos is not None,
              f"a recursive forecast feeds predictions back as inputs, so every target must be "
              f"an input column; targets {self.targets} vs inputs {self.inputs}: add the "
              f"targets to --column")

    def _known_future(self, steps: int, rows: Optional[np.ndarray], time_tail) -> np.ndarray:
        """(steps - 1, n_inputs) scaled inputs of the rows past the end that a forecast of
        ``steps`` rows past it reads (its last row is forecast, never read): known-future
        columns from ``rows`` (F, C) (the data's trailing target-less rows), calendar
        features of the dates after ``time_tail``, time steps from the rows' times (one
        median gap, Δt = 1, where they give none); predicted columns 0 (overwritten)."""
        unknown = [c for c in self.inputs if c not in self.outputs and c not in self.future]
        check(not unknown, f"cannot forecast past the end of the data: the run neither predicts "
                           f"input(s) {unknown} nor knows their future (--future-column); start inside "
                           f"the data (--start val/test)")
        need = max(steps - 1, 0)
        out = np.zeros((need, len(self.columns)))
        given = [c for c in self.future if c not in self.calendar_names + [DT]]
        if DT in self.columns and need:
            j = self.columns.index(DT)
            out[:, j] = 1.0  # one median gap, unless the rows give their times
            if rows is not None:
                known = rows[:need, j]
                out[:len(known), j] = np.where(np.isnan(known), 1.0, known)
        if given and need:
            have = 0 if rows is None else len(rows)
            idx = [self.columns.index(c) for c in given]
            block = np.full((need, len(idx)), np.nan)
            if have:
                block[:min(have, need)] = rows[:need, idx]
            bad = np.isnan(block).any(1)
            if bad.any():
                first = int(np.argmax(bad))
                raise UserError(
                    f"forecasting {steps} rows past the end needs the known-future column(s) "
                    f"{', '.join(given)} over the first {need}, but the data gives {first} such row(s) (rows "
                    f"after the last target value, targets left empty); add rows to the file or forecast "
                    f"fewer steps (--steps {first + 1})" if first else
                    f"forecasting past the end needs the known-future column(s) {', '.join(given)} there: "
                    f"add rows after the last observation with the targets empty and those columns filled")
            out[:, idx] = block
        if self.calendar and need:
            dates = future_dates(time_tail, need)
            check(dates is not None, "calendar features need the dates past the end, but the data's "
                                     "last dates give no regular spacing to continue")
            feats, names = calendar_features(dates, self.calendar)
            out[:, [self.columns.index(n) for n in names]] = feats
        return self.scaler.transform(out)[:, self.in_idx]

    def future_context(self, tail: Optional[np.ndarray] = None) -> np.ndarray:
        """(window, n_inputs) scaled: the last rows (the run's saved ones, or ``tail`` (≥ W,
        C) of new data in original units, scaled with the run's scaler), the start of any
        prediction past their end; UserError unless every target is an input."""
        self.require_feedback()
        rows = self.tail if tail is None else tail[-self.window:]
        return self.scaler.transform(rows)[:, self.in_idx]

    def new_data(self, path):
        """{None: (rows (T, C) of a new file with the run's columns, original units; its dates
        or None; its known-future rows or None)}: one series (a long file's task has one entry
        per series); UserError unless it has the columns and at least one window of rows."""
        base = [c for c in self.columns if c not in self.calendar_names + [DT]]
        base += [self.config.time_column] if self.time_numeric else []
        return {None: self.tail_of(load_csv(path, base, self.config.interpolate, known_future=self.future), path)}

    def tail_of(self, series, path):
        """(rows, dates, known-future rows) of a newly read series, calendar columns added."""
        series = self._derived(series, self.calendar)
        check(len(series) >= self.window, f"{path} has {len(series)} rows; a forecast starts from "
                                          f"the last {self.window} (the run's window)")
        return series.values, series.time, series.future

    def recursive_forecast(self, model, start_row: int, steps: int, *, levels: bool = False):
        """Forecast ``steps`` rows from the ``window`` rows before ``start_row`` (a row of
        the full series). Returns (steps, n_targets) in original units (``levels``: every
        predicted quantile, {q: (steps, n_targets)})."""
        self.require_feedback()
        check(self.series is not None, "this task was built for inference without its data; "
                                       "use forecast_future, or build it from the data")
        T = len(self.series)
        check(self.window <= start_row <= T,
              f"start_row must be in [{self.window}, {T}] (a full window before it), "
              f"got {start_row}")
        past = max(0, start_row + steps - T)
        beyond = self._known_future(past, self.future_rows, self.series.time) if past else None

        def known(k: int, count: int) -> np.ndarray:
            rows = np.arange(start_row + k, start_row + k + count)
            inside = self.scaled[np.minimum(rows, T - 1)][:, self.in_idx]
            if rows[-1] >= T:
                inside[rows >= T] = beyond[rows[rows >= T] - T]
            return inside

        context = self.scaled[start_row - self.window:start_row][:, self.in_idx]
        out = self._roll(model, context, steps, known)
        return out if levels else out[0.5]

    def forecast_future(self, model, steps: int, tail: Optional[np.ndarray] = None, *,
                        time=None, future_rows: Optional[np.ndarray] = None, levels: bool = False):
        """``steps`` rows past the end of the series (or of ``tail``, new rows (T, C) in
        original units, with its dates ``time`` and known-future rows): (steps, n_targets)
        in original units (``levels``: {q: (steps, n_targets)})."""
        context = self.future_context(tail)
        if tail is None:
            time, future_rows = self.time_tail, self.future_rows
        beyond = self._known_future(steps, future_rows, time)
        out = self._roll(model, context, steps, lambda k, count: beyond[k:k + count])
        return out if levels else out[0.5]

    def interval_of(self, levels: Levels) -> Optional[Tuple[np.ndarray, np.ndarray]]:
        """(lower, upper) of a forecast's quantiles: the outermost pair; None for a point."""
        qs = sorted(levels)
        return None if len(qs) == 1 else (levels[qs[0]], levels[qs[-1]])

r"""Time-series forecasting: windows of the past predict the next ``horizon`` steps.

Generalises the seed PyTorch example (a sine, 20-step windows, next value, recursive
forecast over the validation period). Shapes, with W = window, H = horizon::

    inputs   (N, W, n_inputs)        x_i = z[i : i+W, inputs]           (scaled units)
    targets  (N, H * n_targets)      y_i = z[i+W : i+W+H, targets], step-major

where z is the series after the train-fitted :class:`Scaler`. With H = 1 this is
exactly the seed's ``SineDataset``: ``x = data[idx:idx+seq_len]``, ``y = data[idx+seq_len]``.
Rows are split in time order and each split builds windows from its own rows only.

``task.normalize`` then reads each window relative to itself: ``level`` x_i - c_i, y_i - c_i
with c_i = the window's last row (at the targets' columns); ``window`` (x_i - m_i) / s_i with
the window's mean and std (std >= 0.1 scaled units); every forecast (evaluation, recursive,
``forecast``) maps the model's output back, ŷ = c_i + output (or m_i + s_i · output).
Every score comes with the baselines' on the same windows (:mod:`.baselines`).
"""
from __future__ import annotations

from typing import Any, Callable, Dict, Iterator, NamedTuple, Optional, Sequence

import numpy as np
import torch

from ..config.schema import check
from ..errors import UserError
from .base import evaluating, mse, SPLITS, Batch, DecoderInputs, Task, TaskSpec
from .baselines import errors, mase_scale, season_length, seasonal_naive
from .forecast_config import ForecastConfig
from .forecast_report import ForecastReport
from .windows import to_window, window_stats
from .scaling import Scaler
from .series import builtin_series, load_csv, split_bounds

FILE_WINDOW = 12  # task.window = 0 on a file
EVAL_BATCH = 4096  # windows per forward pass in evaluation (memory, not results)


class _Windows(NamedTuple):
    x: torch.Tensor  # (N, W, n_inputs) scaled
    y: torch.Tensor  # (N, H * n_targets) scaled
    raw_y: np.ndarray  # (N, H, n_targets) original units, float64 (metrics)
    raw_last: np.ndarray  # (N, n_targets) last observed target values (persistence)
    rows: np.ndarray  # (N, H) the series rows each window forecasts


class ForecastTask(ForecastReport, Task):
    """Many-to-one regression of the next ``horizon`` rows from ``window`` past rows.

    spec: input_size = n_inputs, output_size = horizon * n_targets, tokens=False,
    per_step=False. The loss is the MSE in scaled units.
    """

    name = "forecast"
    forcing = 1.0  # the decoder's teacher-forcing probability this round (task.sampling)

    def __init__(self, config: ForecastConfig, *, seed: int = 0, device="cpu",
                 dtype: torch.dtype = torch.float32):
        self.config, self.seed = config, seed
        self.device, self.dtype = torch.device(device), dtype
        self.window, self.horizon = config.window, config.horizon
        if config.data:
            # only the chosen columns must be numeric; no columns: every numeric column
            wanted = (list(dict.fromkeys(config.columns + config.targets))
                      if config.columns else None)
            self.series = load_csv(config.data, wanted, config.interpolate)
        else:
            self.series = builtin_series(config.series, config.length, seed)
        self._set_columns(self.series.columns, config.columns, config.targets)
        self.normalize = config.normalize
        if self.normalize == "auto":
            self.normalize = "level" if config.data and self.tgt_in_pos is not None else "none"
        check(self.normalize == "none" or self.tgt_in_pos is not None,
              f"task.normalize = \"{config.normalize}\" maps each forecast back by its window's values, so "
              f"every target must be an input (targets {self.targets}, inputs {self.inputs}): add the targets "
              f"to --column or set task.normalize = \"none\"")
        self.bounds = split_bounds(len(self.series), config.split)
        a, b = self.bounds["train"]
        self.scaler = Scaler(config.scale).fit(self.series.values[a:b])
        self.season = config.season or season_length(self.series.time)
        self.window = config.window or self._auto_window()
        train_targets = self.series.values[a:b][:, self.tgt_idx]
        self.train_mean, self.mase_scale = train_targets.mean(0), mase_scale(train_targets, self.season)
        self._check_lengths()
        self._build()

    # ------------------------------------------------------------ construction

    def _set_columns(self, columns: Sequence[str], inputs: Sequence[str],
                     targets: Sequence[str]) -> None:
        self.columns = list(columns)
        self.inputs = list(inputs) or list(columns)
        self.targets = list(targets) or list(self.inputs)
        for kind, names in (("input", self.inputs), ("target", self.targets)):
            unknown = [c for c in names if c not in self.columns]
            check(not unknown, f"unknown {kind} column(s) {unknown}; available columns: "
                               f"{', '.join(self.columns)}")
        self.in_idx = [self.columns.index(c) for c in self.inputs]
        self.tgt_idx = [self.columns.index(c) for c in self.targets]
        # where each target sits among the inputs (None: some target is not an input)
        self.tgt_in_pos = ([self.inputs.index(c) for c in self.targets]
                           if set(self.targets) <= set(self.inputs) else None)
        if self.config.decoder:  # H decoder steps of n_targets values each
            self.spec = TaskSpec(input_size=len(self.inputs), output_size=len(self.targets),
                                 aligned=False, decoder=True, target_tokens=False)
        else:
            self.spec = TaskSpec(input_size=len(self.inputs),
                                 output_size=self.horizon * len(self.targets),
                                 tokens=False, per_step=False)

    def _auto_window(self) -> int:
        """task.window = 0: the seed's 20 for a built-in series; 12 rows for a file (measured
        on the aeon series of docs/forecasting.md: 12 beat 6 and two seasons), no longer than
        the validation and test splits can hold with the horizon (and at least 2)."""
        if not self.config.data:
            return 20
        sizes = [b - a for a, b in (self.bounds["val"], self.bounds["test"]) if b > a]
        room = min(sizes) - self.horizon if sizes else FILE_WINDOW
        return max(2, min(FILE_WINDOW, room))

    def _check_lengths(self) -> None:
        need = self.window + self.horizon
        for split in ("train", "val"):
            a, b = self.bounds[split]
            if (split == "train" or b > a) and b - a < need:
                raise UserError(
                    f"the {split} split has {b - a} rows of {len(self.series)} but one example "
                    f"needs window + horizon = {self.window} + {self.horizon} = {need}; use a "
                    f"shorter --window/--horizon or a longer series")

    def _build(self) -> None:
        """Scaled series and every split's windows, computed once."""
        self.target_scaler = self.scaler.select(self.tgt_idx)
        self.tail = self.series.values[-self.window:].copy()  # (W, C) for forecast_future
        # the last dates, to date a forecast past the end (None without a date column)
        self.time_tail = None if self.series.time is None else [str(t) for t in self.series.time[-10:]]
        self.scaled = self.scaler.transform(self.series.values)  # (T, C)
        self._windows = {s: self._make_windows(*self.bounds[s]) for s in SPLITS}

    def _make_windows(self, a: int, b: int) -> _Windows:
        W, H, nt = self.window, self.horizon, len(self.targets)
        n = max(0, b - a - W - H + 1)
        first = a + np.arange(n)[:, None]  # (N, 1) first row of each window
        x_rows, y_rows = first + np.arange(W), first + W + np.arange(H)  # (N, W), (N, H)
        x = self.scaled[x_rows][:, :, self.in_idx].reshape(n, W, len(self.inputs))
        y = self.scaled[y_rows][:, :, self.tgt_idx].reshape(n, H * nt)
        raw = self.series.values
        tensor = lambda v: torch.as_tensor(v, dtype=self.dtype, device=self.device)
        return _Windows(tensor(x), tensor(y), raw[y_rows][:, :, self.tgt_idx].reshape(n, H, nt),
                        raw[x_rows[:, -1]][:, self.tgt_idx].reshape(n, nt), y_rows)

    # ------------------------------------------------------------ Task protocol

    def split_size(self, split: str) -> int:
        w = self._windows.get(split)
        return 0 if w is None else len(w.x)

    def batches(self, split: str, batch_size: int, *,
                generator: Optional[torch.Generator] = None) -> Iterator[Batch]:
        w = self._windows[split]
        n, train = len(w.x), split == "train"
        order = torch.randperm(n, generator=generator) if train else torch.arange(n)
        for i in range(0, n, batch_size):
            idx = order[i:i + batch_size].to(self.device)
            x = w.x[idx]  # (B, W, n_inputs)
            if train and self.config.input_noise > 0:
                noise = torch.randn(x.shape, generator=generator, dtype=self.dtype)
                x = x + self.config.input_noise * noise.to(self.device)
            center, spread = self._window_stats(w.x[idx])
            x, y = self._to_window(x, center, spread), self._to_window(w.y[idx], center, spread, targets=True)
            yield Batch(x, y, continues=False, decoder=self._teacher(self._to_window(w.x[idx], center, spread), y))

    def _window_stats(self, x: torch.Tensor):
        return window_stats(x, self.normalize)

    def _to_window(self, v: torch.Tensor, center, spread, *, targets: bool = False, back: bool = False):
        return to_window(v, center, spread, self.tgt_in_pos if targets else None, back=back)

    def _start(self, x: torch.Tensor) -> torch.Tensor:
        """A decoder's first input (N, n_targets): the last observed target values of each
        window (zeros when some target is not an input)."""
        if self.tgt_in_pos is None:
            return x.new_zeros(x.shape[0], len(self.targets))
        return x[:, -1, self.tgt_in_pos]

    def _teacher(self, x: torch.Tensor, y: torch.Tensor) -> Optional[DecoderInputs]:
        """The decoder's teacher-forced inputs (N, H, n_targets): y_0 = the last observed
        values, then the true y_1 .. y_{H-1}; None without a decoder."""
        if not self.config.decoder:
            return None
        steps = y.reshape(len(y), self.horizon, len(self.targets))
        return DecoderInputs(torch.cat([self._start(x)[:, None], steps[:, :-1]], 1), forcing=self.forcing)

    def start_round(self, round: int) -> None:
        self.forcing = self.config.sampling.forcing(round)

    def stream(self, split: str) -> Optional[Batch]:
        """The split's rows as one stream: inputs z[a : b-H] (1, T, n_inputs), targets at
        step t the H rows after it, z[t+1 : t+1+H] (1, T, H * n_targets) (scaled units):
        exactly the targets of the windows ending at each row, without the windows."""
        a, b = self.bounds[split]
        T = b - a - self.horizon
        if self.series is None or T <= 0 or self.normalize != "none":
            return None  # per-window normalisation has no one stream: windows it is
        rows = a + np.arange(T)  # (T,) the last row read at each step
        y_rows = rows[:, None] + 1 + np.arange(self.horizon)  # (T, H)
        x = self.scaled[rows][:, self.in_idx]
        y = self.scaled[y_rows][:, :, self.tgt_idx].reshape(T, -1)
        tensor = lambda v: torch.as_tensor(v, dtype=self.dtype, device=self.device)[None]
        return Batch(tensor(x), tensor(y), continues=False)

    def loss(self, outputs: torch.Tensor, batch: Batch) -> torch.Tensor:
        """MSE in scaled units; a decoder's (N, H, n_targets) outputs read step-major."""
        return mse(outputs.reshape(outputs.shape[0], -1), batch.targets)

    def within_tolerance(self, outputs: torch.Tensor, batch: Batch, tolerance: float) -> torch.Tensor:
        return super().within_tolerance(outputs.reshape(outputs.shape[0], -1), batch, tolerance)

    def predict_windows(self, model, x: torch.Tensor) -> torch.Tensor:
        """The model's forecasts (N, H * n_targets) of windows x (N, W, n_inputs), scaled; a
        decoder runs free (its own predictions fed back), as it would on new data."""
        center, spread = self._window_stats(x)
        x = self._to_window(x, center, spread)
        if self.config.decoder:
            out = model.decode(x, max_length=self.horizon, start=self._start(x)).values.reshape(len(x), -1)
        else:
            out = model(x, None)[0]
        return self._to_window(out, center, spread, targets=True, back=True)

    def _predict(self, model, x: torch.Tensor) -> torch.Tensor:
        with evaluating(model):
            return torch.cat([self.predict_windows(model, x[i:i + EVAL_BATCH])
                              for i in range(0, len(x), EVAL_BATCH)])

    def evaluate(self, model, split: str) -> Dict[str, float]:
        """loss (scaled MSE), and in original units mse, mae, nrmse, mase, plus the baselines'
        (tasks/baselines.py): persistence (only when targets are inputs), seasonal naive
        (with a season) and the training mean."""
        w = self._windows.get(split)
        if w is None or len(w.x) == 0:
            return {}
        pred = self._predict(model, w.x)  # (N, H * n_targets)
        out = {"loss": float(self.loss(pred, Batch(w.x, w.y)))}
        p = self.target_scaler.inverse(pred.double().cpu().numpy().reshape(w.raw_y.shape))
        out.update(errors(p, w.raw_y, self.mase_scale))
        for name, base in self.baselines(w).items():
            out.update({f"{name}_{k}": v for k, v in errors(base, w.raw_y, self.mase_scale).items()})
        return out

    def baselines(self, w: _Windows) -> Dict[str, np.ndarray]:
        """The baselines' forecasts (N, H, n_targets) of a split's windows, original units."""
        out = {}
        if self.tgt_in_pos is not None:
            out["persistence"] = np.repeat(w.raw_last[:, None, :], self.horizon, axis=1)
        if self.season > 1:
            out["seasonal_naive"] = seasonal_naive(self.series.values[:, self.tgt_idx], w.rows, self.season)
        out["mean"] = np.broadcast_to(self.train_mean, w.raw_y.shape).copy()
        return out

    # ------------------------------------------------------------ recursive forecasts

    def _roll(self, model, context: np.ndarray, steps: int,
              known: Callable[[int, int], np.ndarray]) -> np.ndarray:
        """Feed predictions back as inputs, as the seed does with
        ``current = cat(current[:, 1:], pred)``; each call advances ``horizon`` rows.

        context (W, n_inputs) scaled; known(k, H) -> (H, n_inputs) scaled inputs of the
        k-th..(k+H-1)-th predicted rows (true values for non-target inputs).
        Returns (steps, n_targets) in original units.
        """
        H, nt = self.horizon, len(self.targets)
        cur = torch.as_tensor(context, dtype=self.dtype, device=self.device)[None]  # (1, W, n_in)
        preds = []
        with evaluating(model):
            for k in range(0, steps, H):
                step = self.predict_windows(model, cur).reshape(H, nt)  # (H, n_targets)
                preds.append(step)
                if k + H < steps:
                    rows = torch.as_tensor(known(k, H), dtype=self.dtype, device=self.device)
                    rows[:, self.tgt_in_pos] = step
                    cur = torch.cat([cur, rows[None]], dim=1)[:, -self.window:]
        z = torch.cat(preds)[:steps].double().cpu().numpy()
        return self.target_scaler.inverse(z)

    def require_feedback(self) -> None:
        """UserError unless every target is an input (predictions can be fed back)."""
        check(self.tgt_in_pos is not None,
              f"a recursive forecast feeds predictions back as inputs, so every target must be "
              f"an input column; targets {self.targets} vs inputs {self.inputs}: add the "
              f"targets to --column")

    def future_context(self, tail: Optional[np.ndarray] = None) -> np.ndarray:
        """(window, n_inputs) scaled: the last rows (the run's saved ones, or ``tail`` (≥ W,
        C) of new data in original units, scaled with the run's scaler), the start of any
        prediction past their end; UserError unless every input is a predicted target."""
        self.require_feedback()
        extra = [c for c in self.inputs if c not in self.targets]
        check(not extra, f"cannot predict past the end of the data: inputs {extra} are not "
                         f"targets, so their future is unknown; start from the validation "
                         f"split instead (--start val), or make them targets")
        rows = self.tail if tail is None else tail[-self.window:]
        return self.scaler.transform(rows)[:, self.in_idx]

    def new_data_tail(self, path):
        """(rows (T, C) of a new CSV with the run's columns, original units; its dates or
        None); UserError unless it has the columns and at least one window of rows."""
        series = load_csv(path, list(self.columns), self.config.interpolate)
        check(len(series) >= self.window, f"{path} has {len(series)} rows; a forecast starts from "
                                          f"the last {self.window} (the run's window)")
        return series.values, series.time

    def recursive_forecast(self, model, start_row: int, steps: int) -> np.ndarray:
        """Forecast ``steps`` rows from the ``window`` rows before ``start_row`` (a row of
        the full series). Returns (steps, n_targets) in original units."""
        self.require_feedback()
        check(self.series is not None, "this task was built for inference without its data; "
                                       "use forecast_future, or build it from the data")
        T = len(self.series)
        check(self.window <= start_row <= T,
              f"start_row must be in [{self.window}, {T}] (a full window before it), "
              f"got {start_row}")
        unknown_inputs = [c for c in self.inputs if c not in self.targets]

        def known(k: int, count: int) -> np.ndarray:
            rows = np.arange(start_row + k, start_row + k + count)
            if rows[-1] >= T and unknown_inputs:
                raise UserError(f"the forecast runs past the end of the series ({T} rows) but "
                                f"inputs {unknown_inputs} are not predicted; forecast fewer steps")
            return self.scaled[np.minimum(rows, T - 1)][:, self.in_idx]

        context = self.scaled[start_row - self.window:start_row][:, self.in_idx]
        return self._roll(model, context, steps, known)

    def forecast_future(self, model, steps: int, tail: Optional[np.ndarray] = None) -> np.ndarray:
        """``steps`` rows past the end of the series (or of ``tail``, new rows (T, C) in
        original units): (steps, n_targets), original units."""
        context = self.future_context(tail)
        zeros = lambda k, count: np.zeros((count, len(self.inputs)))  # all overwritten
        return self._roll(model, context, steps, zeros)

    # ------------------------------------------------------------ report and state

    def state_dict(self) -> Dict[str, Any]:
        return {"scaler": self.scaler.state_dict(), "columns": list(self.columns),
                "inputs": list(self.inputs), "targets": list(self.targets),
                "window": self.window, "horizon": self.horizon, "tail": self.tail.tolist(),
                "normalize": self.normalize, "time_tail": self.time_tail}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.scaler = Scaler(state["scaler"]["kind"])
        self.scaler.load_state_dict(state["scaler"])
        self.window, self.horizon = int(state["window"]), int(state["horizon"])
        self.normalize = state.get("normalize", "none")  # runs from before task.normalize
        if self.series is None:
            self.time_tail = state.get("time_tail")
        check(self.series is None or list(state["columns"]) == self.series.columns,
              f"saved task columns {state['columns']} differ from the data's "
              f"{self.series and self.series.columns}; use the data the model was trained on")
        self._set_columns(state["columns"], state["inputs"], state["targets"])
        if self.series is None:
            self.target_scaler = self.scaler.select(self.tgt_idx)
            self.tail = np.asarray(state["tail"], dtype=np.float64)  # (W, C)
        else:
            self._build()

    @classmethod
    def for_inference(cls, config: ForecastConfig, state: Dict[str, Any], *, device="cpu",
                      dtype: torch.dtype = torch.float32) -> "ForecastTask":
        """A task that can ``forecast_future`` from a saved state, without the data."""
        task = cls.__new__(cls)
        task.config, task.seed, task.device, task.dtype = config, 0, torch.device(device), dtype
        task.series, task._windows = None, {}
        task.load_state_dict(state)
        return task


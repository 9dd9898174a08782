r"""Time-series forecasting: windows of the past predict the next ``horizon`` steps.

Generalises the seed PyTorch example (a sine, 20-step windows, next value, recursive
forecast over the validation period). Shapes, with W = window, H = horizon::

    inputs   (N, W, n_inputs)        x_i = z[i : i+W, inputs]           (scaled units)
    targets  (N, H * n_outputs)      y_i = z[i+W : i+W+H, outputs], step-major
    outputs  (N, H * n_outputs * k)  k numbers per predicted value (task.head, .heads)

where z is the series after the train-fitted :class:`Scaler`. With H = 1 this is
exactly the seed's ``SineDataset``: ``x = data[idx:idx+seq_len]``, ``y = data[idx+seq_len]``.
Rows are split in time order. A built-in series builds each split's windows from its own
rows only (the seed's); a file's validation and test windows read their inputs from the rows
before (only the forecast rows lie in the split), so every split row is forecast.

The predicted columns ("outputs") are the targets, then, when every target is an input,
the inputs that are neither targets nor known-future columns (``task.future``, calendar
features, time steps): those are forecast too, so that a recursive forecast can run past the
end of the data. Metrics are over the targets only. Known-future inputs are read, never predicted.

``task.normalize`` then reads each window relative to itself: ``level`` x_i - c_i, y_i - c_i
with c_i = the window's last row (at the predicted columns; known-future inputs keep their
scaled values); ``window`` (x_i - m_i) / s_i with the window's mean and std (std >= 0.1
scaled units); ``season`` each forecast step relative to the value one season before it
(:mod:`.windows`); every forecast (evaluation, recursive, ``forecast``) maps the model's
output back, ŷ = c_i + output (or m_i + s_i · output).
Every score comes with the baselines' on the same windows (:mod:`.baselines`).
"""
from __future__ import annotations

from typing import Any, Dict, Iterator, NamedTuple, Optional

import numpy as np
import torch

from ..config.schema import check
from .base import evaluating, mse, SPLITS, Batch, DecoderInputs, Task
from .closed_loop import rolled_windows
from .baselines import errors, mase_scale, season_length, seasonal_naive
from .forecast_config import ForecastConfig
from .forecast_data import DT, ForecastData, require_change
from .forecast_report import ForecastReport
from .forecast_roll import RecursiveForecasts
from .heads import interval_scores, make_head
from .windows import Norm, to_window, window_stats
from .scaling import Scaler
from .series import Series, builtin_series

EVAL_BATCH = 4096  # windows per forward pass in evaluation (memory, not results)


class _Windows(NamedTuple):
    x: torch.Tensor  # (N, W, n_inputs) scaled
    y: torch.Tensor  # (N, H * n_outputs) scaled
    raw_y: np.ndarray  # (N, H, n_targets) original units, float64 (metrics)
    raw_last: np.ndarray  # (N, n_targets) last observed target values (persistence)
    rows: np.ndarray  # (N, H) the series rows each window forecasts


class ForecastTask(ForecastData, RecursiveForecasts, ForecastReport, Task):
    """Many-to-one regression of the next ``horizon`` rows from ``window`` past rows.

    spec: input_size = n_inputs, output_size = horizon * n_outputs * k, tokens=False,
    per_step=False. The loss is the head's (MSE for a point forecast) in scaled units."""

    headline = "mase"
    name = "forecast"
    forcing = 1.0  # the decoder's teacher-forcing probability this round (task.sampling)

    def __init__(self, config: ForecastConfig, *, seed: int = 0, device="cpu",
                 dtype: torch.dtype = torch.float32, series: Optional[Series] = None):
        self.config, self.seed = config, seed
        self.device, self.dtype = torch.device(device), dtype
        self.window, self.horizon = config.window, config.horizon
        self.head = make_head(config.head, config.interval, config.quantiles)
        if series is not None:  # one series of a long file (tasks/panel.py)
            self.series = self._derived(series)
        elif config.data:
            self.series = self._derived(self._read(config.data))
        else:
            self.series = builtin_series(config.series, config.length, seed)
            self.calendar = []
        future = list(config.future) + [c for c in self.series.columns if c in self.calendar_names + [DT]]
        self._set_columns(self.series.columns, config.columns, config.targets, future)
        self._rolled = None  # this round's closed-loop windows (task.rollout)
        check(not config.rollout or self.out_in_pos is not None,
              f"task.rollout feeds predictions back into the windows, so every target must be an input "
              f"(targets {self.targets}, inputs {self.inputs}): add the targets to --column")
        if config.end:
            self.series = self._first_rows(self.series, config.end)
        self.bounds = self._bounds(len(self.series))
        a, b = self.bounds["train"]
        self.scaler = Scaler(config.scale).fit(self.series.values[a:b], fixed=self.duration_columns)
        self.season = config.season or season_length(self.series.time)
        train_targets = self.series.values[a:b][:, self.tgt_idx]
        if not config.series_id:  # one flat series of a long file is a series like the others
            require_change(self.targets, train_targets)
        self.seasonal = bool(config.data) and self._strong_season(train_targets)
        self.window = config.window or self._auto_window()
        self.normalize = self._resolve_normalize()
        self.train_mean, self.mase_scale = train_targets.mean(0), mase_scale(train_targets, self.season)
        self._check_lengths()
        self._build()

    # ------------------------------------------------------------ construction

    @property
    def reads_past(self) -> bool:
        """Whether validation and test windows read their inputs from earlier rows (a file;
        a built-in series keeps the seed's windows within each split)."""
        return bool(self.config.data)

    def _build(self) -> None:
        """Scaled series and every split's windows, computed once."""
        self.output_scaler = self.scaler.select(self.out_idx)
        self.tail = self.series.values[-self.window:].copy()  # (W, C) for forecast_future
        self.future_rows = self.series.future  # (F, C) known-future rows past the end, or None
        # the last dates, to date a forecast past the end (None without a date column)
        self.time_tail = None if self.series.time is None else [str(t) for t in self.series.time[-10:]]
        self.scaled = self.scaler.transform(self.series.values)  # (T, C)
        self._windows = {s: self._make_windows(*self.bounds[s], past=s != "train" and self.reads_past)
                         for s in SPLITS}

    def _make_windows(self, a: int, b: int, past: bool = False) -> _Windows:
        """The windows whose inputs and forecast rows lie in rows [a, b) (``past``: whose
        forecast rows do; the inputs may come from before a)."""
        W, H, nt = self.window, self.horizon, len(self.targets)
        lo = max(0, a - W) if past and b > a else a
        n = max(0, b - lo - W - H + 1)
        first = lo + np.arange(n)[:, None]  # (N, 1) first row of each window
        y_rows = first + W + np.arange(H)  # (N, H)
        # the inputs as overlapping views of the rows (unfold), copied once into the model's dtype:
        # gathering rows by index held W int64 indices and W float64 values per window (~0.5 GB)
        cols = torch.from_numpy(np.ascontiguousarray(self.scaled[:, self.in_idx]))  # (T, F)
        x = cols.unfold(0, W, 1)[lo:lo + n].transpose(1, 2) if n else cols.new_zeros(0, W, len(self.inputs))
        x = x.to(device=self.device, dtype=self.dtype).contiguous()  # (N, W, F)
        y = self.scaled[y_rows][:, :, self.out_idx].reshape(n, H * len(self.outputs))
        raw = self.series.values
        return _Windows(x, torch.as_tensor(y, dtype=self.dtype, device=self.device),
                        raw[y_rows][:, :, self.tgt_idx].reshape(n, H, nt),
                        raw[first[:, 0] + W - 1][:, self.tgt_idx].reshape(n, nt), y_rows)

    # ------------------------------------------------------------ Task protocol

    def split_size(self, split: str) -> int:
        return len(self._windows[split].x) if split in self._windows else 0

    def batches(self, split: str, batch_size: int, *, generator: Optional[torch.Generator] = None) -> Iterator[Batch]:
        xs, ys = self.train_xy() if split == "train" else (self._windows[split].x, self._windows[split].y)
        return self.batches_of(xs, ys, batch_size, train=split == "train", generator=generator)

    def train_xy(self):
        """The training windows (N, W, C) and targets (N, H * P), scaled, with this round's
        closed-loop windows (task.rollout) after the true ones."""
        w = self._windows["train"]
        if self._rolled is None:
            return w.x, w.y
        return torch.cat([w.x, self._rolled[0]]), torch.cat([w.y, self._rolled[1]])

    @property
    def members(self) -> Dict[Optional[str], "ForecastTask"]:
        """The series this task forecasts, by id: one, unnamed (a long file's task has many)."""
        return {None: self}

    def batches_of(self, xs: torch.Tensor, ys: torch.Tensor, batch_size: int, *, train: bool,
                   generator: Optional[torch.Generator] = None) -> Iterator[Batch]:
        """Batches of windows xs (N, W, C), targets ys (N, H * P) (scaled units), each window
        normalised (task.normalize); shuffled by ``generator`` and noised when ``train``."""
        n = len(xs)
        order = torch.randperm(n, generator=generator) if train else torch.arange(n)
        for i in range(0, n, batch_size):
            idx = order[i:i + batch_size].to(self.device)
            clean = x = xs[idx]  # (B, W, n_inputs)
            if train and self.config.input_noise > 0:  # on observed inputs, not the known-future ones
                noise = torch.randn(x.shape, generator=generator, dtype=self.dtype)
                x = x + self.config.input_noise * (noise * self.noise_mask).to(self.device)
            norm = self._window_stats(clean)
            x, y = self._to_window(x, norm), self._to_window(ys[idx], norm, targets=True)
            yield Batch(x, y, continues=False, decoder=self._teacher(self._to_window(clean, norm), y))

    def _window_stats(self, x: torch.Tensor) -> Optional[Norm]:
        return window_stats(x, self.normalize, self.norm_pos, self.out_in_pos, self.horizon, self.season)

    def _to_window(self, v: torch.Tensor, norm: Optional[Norm], *, targets: bool = False, back: bool = False):
        return to_window(v, norm, targets, back=back)

    def _start(self, x: torch.Tensor) -> torch.Tensor:
        """A decoder's first input (N, n_outputs): the last observed values of the predicted
        columns in each window (zeros when some target is not an input)."""
        if self.out_in_pos is None:
            return x.new_zeros(x.shape[0], len(self.outputs))
        return x[:, -1, self.out_in_pos]

    def _teacher(self, x: torch.Tensor, y: torch.Tensor) -> Optional[DecoderInputs]:
        """The decoder's teacher-forced inputs (N, H, n_outputs): y_0 = the last observed
        values, then the true y_1 .. y_{H-1}; None without a decoder."""
        if not self.config.decoder:
            return None
        steps = y.reshape(len(y), self.horizon, len(self.outputs))
        return DecoderInputs(torch.cat([self._start(x)[:, None], steps[:, :-1]], 1), forcing=self.forcing)

    def start_round(self, round: int, model=None) -> None:
        """The decoder's teacher forcing this round; with ``task.rollout``, the closed-loop
        windows of the model as it starts the round (:mod:`.closed_loop`; from round 1: a
        freshly initialised model's predictions say nothing)."""
        self.forcing = self.config.sampling.forcing(round)
        self._rolled = None
        if self.config.rollout and model is not None and round > 0:
            w = self._windows["train"]
            self._rolled = rolled_windows(self, model, w.x, w.y, self.config.rollout)

    def stream(self, split: str) -> Optional[Batch]:
        """The split's rows as one stream: inputs z[a : b-H] (1, T, n_inputs), targets at
        step t the H rows after it, z[t+1 : t+1+H] (1, T, H * n_outputs) (scaled units):
        exactly the targets of the windows ending at each row, without the windows."""
        a, b = self.bounds[split]
        T = b - a - self.horizon
        if self.series is None or T <= 0 or self.normalize != "none" or self.config.rollout:
            return None  # per-window normalisation and rolled windows have no one stream: windows it is
        rows = a + np.arange(T)  # (T,) the last row read at each step
        y_rows = rows[:, None] + 1 + np.arange(self.horizon)  # (T, H)
        x = self.scaled[rows][:, self.in_idx]
        y = self.scaled[y_rows][:, :, self.out_idx].reshape(T, -1)
        tensor = lambda v: torch.as_tensor(v, dtype=self.dtype, device=self.device)[None]
        return Batch(tensor(x), tensor(y), continues=False)

    def loss(self, outputs: torch.Tensor, batch: Batch) -> torch.Tensor:
        """The head's loss in scaled units (MSE for a point forecast); a decoder's (N, H,
        n_outputs) outputs and a stream's (1, T, ·) read step-major."""
        n = outputs.shape[0]
        return self.head.loss(outputs.reshape(n, -1), batch.targets.reshape(n, -1))

    def within_tolerance(self, outputs: torch.Tensor, batch: Batch, tolerance: float) -> torch.Tensor:
        point = self.head.levels(outputs.reshape(outputs.shape[0], -1))[0.5]
        return super().within_tolerance(point, batch, tolerance)

    def population_scores(self, outputs: torch.Tensor, batch: Batch, tolerance: float):
        return self.head.population_scores(outputs.reshape(*outputs.shape[:2], -1),
                                           batch.targets.reshape(outputs.shape[1], -1), tolerance)

    def predict_levels(self, model, x: torch.Tensor) -> Dict[float, torch.Tensor]:
        """The model's forecast quantiles {q: (N, H * n_outputs)} of windows x (N, W,
        n_inputs), scaled units; 0.5 is the point forecast (a point head has only it). A
        decoder runs free (its own predictions fed back), as it would on new data."""
        norm = self._window_stats(x)
        x = self._to_window(x, norm)
        if self.config.decoder:
            out = model.decode(x, max_length=self.horizon, start=self._start(x)).values.reshape(len(x), -1)
        else:
            out = model(x, None)[0]
        return {q: self._to_window(v, norm, targets=True, back=True)
                for q, v in self.head.levels(out).items()}

    def predict_windows(self, model, x: torch.Tensor) -> torch.Tensor:
        """The point forecasts (N, H * n_outputs) of windows x (N, W, n_inputs), scaled."""
        return self.predict_levels(model, x)[0.5]

    def _predict(self, model, x: torch.Tensor) -> Dict[float, torch.Tensor]:
        """:meth:`predict_levels` of many windows, in evaluation mode and memory-sized chunks,
        written into one buffer (small kept chunks between big transient ones fragment the heap:
        +0.4 GB over 1.4 million windows)."""
        out: Dict[float, torch.Tensor] = {}
        with evaluating(model):
            for i in range(0, len(x), EVAL_BATCH):
                for q, v in self.predict_levels(model, x[i:i + EVAL_BATCH]).items():
                    out.setdefault(q, v.new_empty((len(x), *v.shape[1:])))[i:i + len(v)] = v
        return out

    def _head_loss(self, model, w: _Windows) -> float:
        """A probabilistic head's loss over a split's windows (window units, as in training)."""
        with evaluating(model):
            total = sum(float(self.loss(model(b.inputs, None)[0], b)) * len(b)
                        for b in self.batches_of(w.x, w.y, EVAL_BATCH, train=False))
        return total / len(w.x)

    def to_data_units(self, z: torch.Tensor) -> np.ndarray:
        """Scaled predictions (..., n_outputs) -> the targets' values (..., n_targets), float64."""
        return self.output_scaler.inverse(z.double().cpu().numpy())[..., :len(self.targets)]

    def evaluate(self, model, split: str) -> Dict[str, float]:
        """loss, and in original units mse, mae, nrmse, mase (of the point forecast, over the
        targets), the baselines' (tasks/baselines.py): persistence (only when targets are inputs),
        seasonal naive (with a season), the training mean; with a probabilistic head also
        coverage, width, pinball and crps (tasks/heads.py)."""
        return self._score(model, self._windows.get(split))

    def evaluate_rows(self, model, a: int, b: int) -> Dict[str, float]:
        """:meth:`evaluate` of the windows that forecast rows [a, b) of the series, their
        inputs read from the rows before (a backtest's fold)."""
        return self._score(model, self._make_windows(a, b, past=True))

    def windows_forecasting(self, a: int, b: int) -> int:
        """How many windows forecast rows [a, b) (:meth:`evaluate_rows` scores them)."""
        return len(self._make_windows(a, b, past=True).rows)

    def _score(self, model, w: Optional[_Windows]) -> Dict[str, float]:
        if w is None or len(w.x) == 0:
            return {}
        N, H = len(w.x), self.horizon
        scaled = self._predict(model, w.x)  # {q: (N, H * n_outputs)}
        levels = {q: self.to_data_units(v.reshape(N, H, -1)) for q, v in scaled.items()}
        # the loss: a point forecast's MSE in scaled units; a distribution's loss as trained
        out = {"loss": self._head_loss(model, w) if self.head.size > 1 else float(mse(scaled[0.5], w.y))}
        out.update(errors(levels[0.5], w.raw_y, self.mase_scale))
        out.update(interval_scores(levels, w.raw_y, self.head))
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

    # ------------------------------------------------------------ report and state

    def state_dict(self) -> Dict[str, Any]:
        future = None if self.future_rows is None else self.future_rows.tolist()
        return {"scaler": self.scaler.state_dict(), "columns": list(self.columns),
                "inputs": list(self.inputs), "targets": list(self.targets),
                "future": list(self.future), "outputs": list(self.outputs), "calendar": list(self.calendar),
                "window": self.window, "horizon": self.horizon, "tail": self.tail.tolist(),
                "normalize": self.normalize, "season": self.season, "time_tail": self.time_tail,
                "future_rows": future, "time_unit": self.time_unit, "time_numeric": self.time_numeric}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.scaler = Scaler(state["scaler"]["kind"])
        self.scaler.load_state_dict(state["scaler"])
        self.window, self.horizon = int(state["window"]), int(state["horizon"])
        self.normalize = state.get("normalize", "none")  # runs from before task.normalize
        self.season = int(state.get("season", 1))
        self.calendar = list(state.get("calendar", []))  # (runs from before known-future inputs)
        self.time_unit, self.time_numeric = state.get("time_unit"), state.get("time_numeric", False)
        if self.series is None:
            self.time_tail = state.get("time_tail")
            rows = state.get("future_rows")
            self.future_rows = None if rows is None else np.asarray(rows, dtype=np.float64)
        check(self.series is None or list(state["columns"]) == self.series.columns,
              f"saved task columns {state['columns']} differ from the data's "
              f"{self.series and self.series.columns}; use the data the model was trained on")
        self._set_columns(state["columns"], state["inputs"], state["targets"], state.get("future", []),
                          state.get("outputs", state["targets"]))
        if self.series is None:
            self.output_scaler = self.scaler.select(self.out_idx)
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
        task.head = make_head(config.head, config.interval, config.quantiles)
        task.load_state_dict(state)
        return task


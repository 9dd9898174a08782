"""Inference on a run directory: recursive forecasts and text samples (what the CLI's
``forecast`` and ``sample`` call)."""
from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Union

import numpy as np
import torch

from .errors import UserError
from .tasks.series import future_dates
from .training.loaded import load_run
from .training.build import make_task

PathLike = Union[str, Path]


@dataclass
class Forecast:
    """A recursive forecast: ``values`` (steps, n_targets) in the data's units."""

    columns: List[str]
    values: np.ndarray
    start: str
    truth: Optional[np.ndarray] = None  # the series' values over the same rows, when known
    dates: Optional[List[str]] = None  # the date of each step, when the data has dates
    # a probabilistic head's prediction interval (steps, n_targets) each, and its coverage
    lower: Optional[np.ndarray] = None
    upper: Optional[np.ndarray] = None
    interval: float = 0.0

    def to_csv(self, sep: str = ",") -> str:
        buf = io.StringIO()
        dated = self.dates is not None
        bounded = self.lower is not None
        pct = f"{100 * self.interval:g}"
        header = ["step", *(["date"] if dated else []), *self.columns] + \
            ([f"{c}_lo{pct}" for c in self.columns] + [f"{c}_hi{pct}" for c in self.columns] if bounded else []) + \
            ([f"{c}_true" for c in self.columns] if self.truth is not None else [])
        buf.write(sep.join(header) + "\n")
        for i, row in enumerate(self.values):
            cells = [str(i + 1), *([self.dates[i]] if dated else []), *(f"{v:.8g}" for v in row)]
            if bounded:
                cells += [f"{v:.8g}" for v in self.lower[i]] + [f"{v:.8g}" for v in self.upper[i]]
            if self.truth is not None:
                cells += [f"{v:.8g}" for v in self.truth[i]] if i < len(self.truth) else [""] * len(self.columns)
            buf.write(sep.join(cells) + "\n")
        return buf.getvalue()

    @property
    def mse(self) -> Optional[float]:
        if self.truth is None:
            return None
        n = min(len(self.truth), len(self.values))
        return float(np.mean((self.values[:n] - self.truth[:n]) ** 2))


@dataclass
class Predictions:
    """What a labelled-sequence run predicts for a file: one dict per CSV row (class and
    probabilities, a value, a tag per step, or a transcription)."""

    rows: List[dict]

    @property
    def values(self) -> List[dict]:
        return self.rows

    def to_csv(self, sep: str = ",") -> str:
        import csv
        buf = io.StringIO()
        if self.rows:
            writer = csv.DictWriter(buf, fieldnames=list(self.rows[0]), lineterminator="\n", delimiter=sep)
            writer.writeheader()
            writer.writerows({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()}
                             for r in self.rows)
        return buf.getvalue()


def predict(run_dir: PathLike, data: PathLike, *, beam_width: Optional[int] = None) -> Predictions:
    """Predictions of a classify/regress/tag/transcribe/seq2seq run for every sequence in
    ``data`` (a file of the training data's format; labels, if present, are ignored; for
    seq2seq, one source per line). ``beam_width``: seq2seq decoding (default: the run's)."""
    run = load_run(run_dir)
    options = {} if beam_width is None else {"beam_width": _beam(run, beam_width)}
    return Predictions(run.task.predict_file(run.model, data, **options))


def translate(run_dir: PathLike, text: Union[str, List[str]], *, beam_width: Optional[int] = None):
    """The output sequence a seq2seq run decodes for ``text`` (a string, or a list of them:
    then a list of outputs)."""
    run = load_run(run_dir)
    _need(run, "translate", "seq2seq")
    texts = [text] if isinstance(text, str) else list(text)
    if not texts or not all(t.strip() for t in texts):
        raise UserError("nothing to translate: give a non-empty text")
    options = {} if beam_width is None else {"beam_width": _beam(run, beam_width)}
    rows = run.task.translate(run.model, texts, **options)
    return rows[0]["prediction"] if isinstance(text, str) else [r["prediction"] for r in rows]


def _beam(run, width: int) -> int:
    if not run.task.spec.target_tokens:  # beam search chooses among symbol sequences a decoder emits
        raise UserError(f"--beam-width is for runs that decode symbol sequences (seq2seq); {run.path} "
                        f"is a {run.config.task_kind} run")
    if width < 1:
        raise UserError(f"--beam-width must be >= 1 (1 = greedy), got {width}")
    return width


def _need(run, what: str, kind: str) -> None:
    if run.config.task_kind != kind:
        raise UserError(f"{run.path} is a {run.config.task_kind} run; '{what}' needs a {kind} run")


def forecast(run_dir: PathLike, steps: Optional[int] = None, start: str = "end",
             data: Optional[PathLike] = None) -> Union[Forecast, "PanelForecast"]:
    """Recursive forecast (predictions fed back as inputs) from a forecasting run.

    start="end": the ``steps`` after the end of the series (needs only the run dir), or
    after the end of ``data``, a new file with the run's columns (scaled with the run's
    scaler); "val"/"test": from the first row of that split, compared with the truth there
    (reloads the data the run was trained on). A run over many series (task.series_id)
    forecasts each: a :class:`PanelForecast`.
    """
    run = load_run(run_dir)
    _need(run, "forecast", "forecast")
    if start not in ("end", "val", "test"):
        raise UserError(f"--start must be end, val or test, got '{start}'")
    if data is not None and start != "end":
        raise UserError("--data forecasts after the end of a new file; --start val/test read the "
                        "run's own data: give one of them")
    task = run.task if start == "end" else make_task(run.config)
    new = task.new_data(data) if data is not None else {}
    parts = {}
    for key, member in task.members.items():
        if data is not None:
            tail, time, future_rows = new[key]
            levels = member.forecast_future(run.model, steps or 100, tail, time=time,
                                            future_rows=future_rows, levels=True)
            parts[key] = _forecast(member, levels, "data", dates=future_dates(time, len(levels[0.5])))
        elif start == "end":
            levels = member.forecast_future(run.model, steps or 100, levels=True)
            parts[key] = _forecast(member, levels, start,
                                   dates=future_dates(member.time_tail, len(levels[0.5])))
        else:
            a, b = member.bounds[start]
            if b <= a:
                raise UserError(f"the run has no {start} split (task.split); use --start end")
            n = steps or (b - a)
            levels = member.recursive_forecast(run.model, a, n, levels=True)
            truth = member.series.values[a:min(a + n, len(member.series))][:, member.tgt_idx]
            parts[key] = _forecast(member, levels, start, truth, _dates(member, a, n))
    return parts[None] if list(parts) == [None] else PanelForecast(parts)


@dataclass
class PanelForecast:
    """Forecasts of many series (a run over a long file): ``parts`` {series id: Forecast}."""

    parts: Dict[str, Forecast]

    def to_csv(self, sep: str = ",") -> str:
        lines = []
        for k, part in self.parts.items():
            body = part.to_csv(sep).splitlines()
            if not lines:
                lines.append(sep.join(["series", body[0]]))
            lines += [sep.join([str(k), row]) for row in body[1:]]
        return "\n".join(lines) + "\n"

    @property
    def values(self) -> np.ndarray:
        """(series, steps, n_targets)."""
        return np.stack([p.values for p in self.parts.values()])


def _forecast(task, levels, start: str, truth=None, dates=None) -> Forecast:
    """A Forecast of a recursive forecast's quantiles {q: (steps, n_targets)}."""
    bounds = task.interval_of(levels)
    lower, upper = bounds if bounds else (None, None)
    return Forecast(list(task.targets), levels[0.5], start, truth, dates, lower, upper,
                    task.head.interval if bounds else 0.0)


def _dates(task, first: int, steps: int) -> Optional[List[str]]:
    """The dates of ``steps`` rows from row ``first`` of the task's series: its own, then
    dates past its end; None without a date column."""
    if task.series.time is None:
        return None
    known = [str(t) for t in task.series.time[first:first + steps]]
    rest = steps - len(known)
    return known + ((future_dates(list(task.series.time), rest) or [""] * rest) if rest > 0 else [])


def sample(run_dir: PathLike, length: int = 500, temperature: float = 0.8, prime: str = "",
           seed: int = 0) -> str:
    """Text sampled from a character-level run (needs only the run directory)."""
    run = load_run(run_dir)
    _need(run, "sample", "text")
    return run.task.sample(run.model, length, temperature=temperature, prime=prime,
                           generator=torch.Generator().manual_seed(seed))


def generate(run_dir: PathLike, steps: int = 100, start: str = "end") -> Forecast:
    """Closed-loop (free-running) generation from a forecasting run, the state carried
    from step to step (:func:`rnntrain.models.generate.closed_loop`; Jaeger 2001).

    The network is first run teacher-forced over a context, then each output is fed back
    as the next input. start="end": the context is the last ``window`` rows saved in the
    run, and the ``steps`` after the end of the series are generated (needs only the run
    dir); "val"/"test": the context is every row before that split (the data is reloaded),
    and the truth there is returned alongside. Needs horizon 1 and every target an input;
    inputs that are not targets must be known (start val/test only).
    """
    from .models.generate import closed_loop

    run = load_run(run_dir)
    _need(run, "generate", "forecast")
    task = run.task if start == "end" else make_task(run.config)
    if len(task.members) > 1:
        raise UserError(f"closed-loop generation runs one series; this run forecasts {len(task.members)} "
                        f"(task.series_id): use 'rnntrain forecast'")
    task = next(iter(task.members.values()))  # the one series (a long file's may hold one)
    if start == "end" and task.future:
        raise UserError(f"closed-loop generation past the end reads no known-future rows ({', '.join(task.future)}); "
                        f"use 'rnntrain forecast', or --start val/test")
    if task.spec.decoder:
        raise UserError("closed-loop generation carries one network's state from step to step; this "
                        "run forecasts with an encoder-decoder: use 'rnntrain forecast'")
    if task.normalize != "none":
        raise UserError(f"closed-loop generation runs the network along the series, but this run saw "
                        f"each window relative to itself (task.normalize = \"{task.normalize}\"): use "
                        f"'rnntrain forecast', or train with --set task.normalize=none")
    if task.spec.distribution:
        raise UserError("closed-loop generation feeds each output back as the next input; this run "
                        "predicts a distribution (task.head): use 'rnntrain forecast'")
    if task.horizon != 1:
        raise UserError(f"closed-loop generation feeds one predicted row back per step; the run "
                        f"predicts {task.horizon} rows (horizon): train with --horizon 1")
    task.require_feedback()
    t = lambda v: torch.as_tensor(v, dtype=_dtype_of(run.model), device=_device_of(run.model))
    if start == "end":
        context = task.future_context()
        exogenous, truth = None, None
    elif start in ("val", "test"):
        a, b = task.bounds[start]
        if b <= a:
            raise UserError(f"the run has no {start} split (task.split); use --start end")
        context = task.scaled[:a][:, task.in_idx]
        ex_rows = np.minimum(np.arange(a, a + steps - 1), len(task.series) - 1)
        exogenous = t(task.scaled[ex_rows][:, task.in_idx])[None]
        truth = task.series.values[a:min(a + steps, len(task.series))][:, task.tgt_idx]
    else:
        raise UserError(f"--start must be end, val or test, got '{start}'")
    out = closed_loop(run.model, t(context)[None], steps, feedback=task.out_in_pos,
                      exogenous=exogenous)  # (1, steps, n_outputs)
    values = task.to_data_units(out[0])
    dates = future_dates(task.time_tail, steps) if start == "end" else _dates(task, a, steps)
    return Forecast(list(task.targets), values, start, truth, dates)


def _dtype_of(model) -> torch.dtype:
    return next(model.parameters()).dtype


def _device_of(model) -> torch.device:
    return next(model.parameters()).device

r"""Many series in one long file (``task.series_id``): one global model over all of them.

A long table has a row per (series, time step) and a column naming the series (Darts'
and NeuralForecast's ``unique_id``). Each series becomes a :class:`~.forecast.ForecastTask`
of its own (its own scaler fitted on its own training rows, its own time-ordered split, its
own baselines and MASE scale); the global model trains on the windows of every series at
once, all normalised the same way, so it learns what the series share.

Shared by all series (one model reads them): the window, the horizon, the columns and the
normalisation. When ``task.window`` or ``task.normalize`` is automatic and the series would
choose differently, the panel takes the shortest window and ``level`` (``season`` only when
every series chooses it with the same season).

Metrics: each split's ``loss`` is the mean over all its windows (the training objective);
every other metric is the mean over the series that have the split (M4's convention: each
series weighs the same, whatever its length). ``summary.json`` also lists each series'
validation and test errors (``per_series``), and ``per_series.csv`` holds them.
"""
from __future__ import annotations

import csv
import dataclasses
from pathlib import Path
from typing import Any, Dict, Iterator, Optional

import numpy as np
import torch

from ..config.schema import check
from ..reporting.render import drawing
from .base import Batch, Task
from .baselines import verdict
from .forecast import ForecastTask
from .forecast_config import ForecastConfig
from .series import load_panel

PLOTTED = 4  # forecast-<id>.png for the first few series


class PanelForecastTask(Task):
    """kind "forecast" with ``task.series_id``: the protocol over many ForecastTasks."""

    headline = "mase"

    name = "forecast"

    def __init__(self, config: ForecastConfig, *, seed: int = 0, device="cpu",
                 dtype: torch.dtype = torch.float32):
        self.config, self.seed, self.device, self.dtype = config, seed, torch.device(device), dtype
        c = config
        wanted = list(dict.fromkeys(c.columns + c.targets + c.future)) if c.columns else None
        series = load_panel(c.data, c.series_id, wanted, c.interpolate, known_future=c.future)
        build = lambda cfg: {k: ForecastTask(cfg, seed=seed, device=device, dtype=dtype, series=s)
                             for k, s in series.items()}
        self._members = build(config)
        shared = self._shared(self._members.values())
        if shared != {}:
            self._members = build(dataclasses.replace(config, **shared))
        first = self.first
        columns = {k: m.columns for k, m in self._members.items()}
        check(all(v == first.columns for v in columns.values()),
              f"the series of {c.data} have different columns ({columns}); give them the same")
        self.spec = first.spec

    def _shared(self, members) -> Dict[str, Any]:
        """The config changes that make every series read alike (module docstring)."""
        members = list(members)
        change: Dict[str, Any] = {}
        if not self.config.window and len({m.window for m in members}) > 1:
            change["window"] = min(m.window for m in members)
        kinds = {(m.normalize, m.season if m.normalize == "season" else 0) for m in members}
        if self.config.normalize == "auto" and (len(kinds) > 1 or "window" in change):
            change["normalize"] = "level" if members[0].normalize != "none" else "none"
        return change

    @property
    def first(self) -> ForecastTask:
        return next(iter(self._members.values()))

    @property
    def members(self) -> Dict[Optional[str], ForecastTask]:
        return dict(self._members)

    # --------------------------------------------------------------- protocol

    def split_size(self, split: str) -> int:
        return sum(m.split_size(split) for m in self._members.values())

    def batches(self, split: str, batch_size: int, *,
                generator: Optional[torch.Generator] = None) -> Iterator[Batch]:
        """Every series' windows together (each already in its own scaled units)."""
        if split == "train":
            parts = [m.train_xy() for m in self._members.values()]
        else:
            parts = [(m._windows[split].x, m._windows[split].y) for m in self._members.values()]
        xs, ys = torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
        return self.first.batches_of(xs, ys, batch_size, train=split == "train", generator=generator)

    def start_round(self, round: int, model=None) -> None:
        for m in self._members.values():
            m.start_round(round, model)

    def loss(self, outputs, batch):
        return self.first.loss(outputs, batch)

    def within_tolerance(self, outputs, batch, tolerance):
        return self.first.within_tolerance(outputs, batch, tolerance)

    def population_scores(self, outputs, batch, tolerance):
        return self.first.population_scores(outputs, batch, tolerance)

    def evaluate(self, model, split: str) -> Dict[str, float]:
        per = {k: m.evaluate(model, split) for k, m in self._members.items()}
        scored = {k: v for k, v in per.items() if v}
        if not scored:
            return {}
        sizes = {k: self._members[k].split_size(split) for k in scored}
        out = {"loss": sum(v["loss"] * sizes[k] for k, v in scored.items()) / sum(sizes.values())}
        for key in next(iter(scored.values())):
            if key != "loss":
                values = [v[key] for v in scored.values() if key in v and v[key] == v[key]]
                out[key] = float(np.mean(values)) if values else float("nan")
        return out

    # --------------------------------------------------------------- report and state

    FILES = ("per_series.csv", "forecast-*.png")

    def report(self, model, out_dir: Path) -> Dict[str, Any]:
        rows = []
        for k, m in self._members.items():
            row: Dict[str, Any] = {"series": k, "rows": len(m.series)}
            for split in ("val", "test"):
                metrics = m.evaluate(model, split)
                row.update({f"{split}_{name}": metrics[name] for name in ("nrmse", "mase", "smape")
                            if name in metrics})
                for base in ("persistence", "seasonal_naive", "mean"):
                    if f"{base}_mase" in metrics:
                        row[f"{split}_{base}_mase"] = metrics[f"{base}_mase"]
            rows.append(row)
        keys = list(dict.fromkeys(k for r in rows for k in r))
        with open(Path(out_dir) / "per_series.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=keys, lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
        for k, m in list(self._members.items())[:PLOTTED]:
            m.report(model, out_dir, plot=f"forecast-{_file_safe(k)}.png")
        out: Dict[str, Any] = {"series": len(self._members), "per_series": rows}
        if drawing():  # (train.figures)
            out["plots"] = "forecast-*.png"
        judged = "test" if self.split_size("test") else "val"
        judgement = verdict(self.evaluate(model, judged), ("persistence", "seasonal_naive", "mean"))
        if judgement:
            out["against_baselines"] = {"split": judged, "season": self.first.season, **judgement}
        return out

    def state_dict(self) -> Dict[str, Any]:
        return {"series_ids": list(self._members), "members": {k: m.state_dict() for k, m in self._members.items()}}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        check(list(state["series_ids"]) == list(self._members),
              f"the run's series {state['series_ids']} differ from the data's {list(self._members)}; "
              f"use the data the model was trained on")
        for k, m in self._members.items():
            m.load_state_dict(state["members"][k])
        self.spec = self.first.spec

    @classmethod
    def for_inference(cls, config: ForecastConfig, state: Dict[str, Any], *, device="cpu",
                      dtype: torch.dtype = torch.float32) -> "PanelForecastTask":
        task = cls.__new__(cls)
        task.config, task.seed, task.device, task.dtype = config, 0, torch.device(device), dtype
        task._members = {k: ForecastTask.for_inference(config, state["members"][k], device=device, dtype=dtype)
                         for k in state["series_ids"]}
        task.spec = task.first.spec
        return task

    def stream(self, split: str) -> Optional[Batch]:
        return None  # windows of many series: no one stream

    def new_data(self, path) -> Dict[Optional[str], tuple]:
        """{id: (rows, dates, known-future rows)} of a new long file, one entry per series of
        the run (the file must hold all of them, with the run's series-id column)."""
        c = self.config
        base = [col for col in self.first.columns if col not in self.first.calendar_names]
        series = load_panel(path, c.series_id, base, c.interpolate, known_future=self.first.future)
        missing = [k for k in self._members if k not in series]
        check(not missing, f"{path} lacks the run's series {missing[:5]}; give every series the run forecasts")
        return {k: m.tail_of(series[k], path) for k, m in self._members.items()}


def _file_safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in str(name))[:60]


class Forecasting:
    """kind "forecast" as the TASKS registry sees it: one series (:class:`ForecastTask`), or
    many in a long file (:class:`PanelForecastTask`, ``task.series_id``)."""

    FILES = ForecastTask.FILES + PanelForecastTask.FILES
    headline, selection = ForecastTask.headline, ForecastTask.selection

    def __call__(self, config: ForecastConfig, **kw) -> Task:
        return (PanelForecastTask if config.series_id else ForecastTask)(config, **kw)

    def for_inference(self, config: ForecastConfig, state: Dict[str, Any], **kw) -> Task:
        return (PanelForecastTask if config.series_id else ForecastTask).for_inference(config, state, **kw)


FORECASTING = Forecasting()

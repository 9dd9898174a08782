r"""Rolling-origin evaluation of a forecaster (``rnntrain backtest``).

The last K·N rows of the series are cut into K folds of N rows; fold k forecasts rows
[o_k, o_k + N), o_k = T_end - (K - k)·N, every window reading its inputs from the rows
before (Tashman 2000; Darts' ``historical_forecasts``, NeuralForecast's ``cross_validation``):

- **refit** (``--refit``): a fresh model per fold, trained on rows [0, o_k) (split into
  train and validation in the config's ratio) with the config's settings and seed: what a
  forecaster retrained before each period would have scored.
- **no refit**: one model. From a run directory, the run's own model, the folds cut from its
  test split (rows it never trained or selected on), T_end = the end of the series; from
  a config, one model trained on the rows before the first fold.

Each fold is scored like a test split, with the baselines on the same windows (persistence,
seasonal naive, mean; :mod:`rnntrain.tasks.baselines`).
"""
from __future__ import annotations

import csv
import dataclasses
import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

from ..config.run import RunConfig
from ..config.schema import check
from ..errors import UserError
from .run_dir import RunDir
from .loaded import load_run
from .build import make_task
from .trainer import train

MEASURES = ("mase", "nrmse", "mae", "mse", "coverage", "crps")  # what a fold's row keeps
BASELINES = ("persistence", "seasonal_naive", "mean")


@dataclass
class Backtest:
    """Per-fold scores: ``rows`` one dict per fold (fold, first/last row and date, windows,
    the model's and the baselines' errors), plus the mean over folds."""

    rows: List[Dict[str, Any]]
    refit: bool

    def mean(self) -> Dict[str, float]:
        keys = [k for k in self.rows[0] if k.split("_")[-1] in MEASURES]
        out = {}
        for k in keys:
            values = [r[k] for r in self.rows if k in r and r[k] == r[k]]
            out[k] = sum(values) / len(values) if values else math.nan
        return out

    def to_csv(self) -> str:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(self.rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()} for r in self.rows)
        return buf.getvalue()

    def to_markdown(self) -> str:
        shown = [b for b in BASELINES if f"{b}_mase" in self.rows[0] or f"{b}_nrmse" in self.rows[0]]
        cell = lambda r, p: f"{r.get(p + 'nrmse', math.nan):.3g} / {r.get(p + 'mase', math.nan):.3g}"
        lines = ["| fold | rows | from | windows | model NRMSE / MASE | "
                 + " | ".join(b.replace("_", " ") for b in shown) + " |",
                 "|---" * (5 + len(shown)) + "|"]
        for r in self.rows:
            lines.append(f"| {r['fold']} | {r['first_row']}-{r['last_row']} | {r.get('from', '')} | {r['windows']} | "
                         f"{cell(r, '')} | " + " | ".join(cell(r, b + '_') for b in shown) + " |")
        m = self.mean()
        lines.append("| mean | | | | **" + cell(m, "") + "** | " + " | ".join(cell(m, b + "_") for b in shown) + " |")
        return "\n".join(lines) + "\n"


def _folds(end: int, folds: int, size: int, start: int) -> List[int]:
    """The K fold origins o_k = end - (K - k)·size; UserError unless all lie at or after ``start``."""
    origins = [end - (folds - k) * size for k in range(folds)]
    if origins[0] < start:
        raise UserError(f"{folds} folds of {size} rows need {folds * size} rows but only {end - start} are "
                        f"available after the training rows; use fewer --folds or a smaller --fold-size")
    return origins


def _row(task, fold: int, a: int, b: int, metrics: Dict[str, float]) -> Dict[str, Any]:
    row: Dict[str, Any] = {"fold": fold + 1, "first_row": a, "last_row": b - 1}
    if task.series.time is not None:
        row["from"] = str(task.series.time[a])
    row["windows"] = metrics.pop("_windows", None)
    for k, v in metrics.items():
        if k.split("_")[-1] in MEASURES:
            row[k] = v
    return row


def backtest(source: Union[str, Path, RunConfig], folds: int, *, refit: bool = False,
             fold_size: Optional[int] = None, out_dir: Optional[Union[str, Path]] = None) -> Backtest:
    """Rolling-origin evaluation (module docstring) of a run directory or a config. Fold
    runs (refit, or the one model of a config) are written under ``out_dir`` when given."""
    check(folds >= 1, f"--folds must be >= 1, got {folds}")
    run = None
    if isinstance(source, RunConfig):
        config = source
    else:
        RunDir(source).require_run()
        run = load_run(source)
        config = run.config
    if config.task_kind != "forecast":
        raise UserError(f"backtesting forecasts rolling origins of a series; this is a {config.task_kind} run")
    if config.task.series_id:
        raise UserError("backtest cuts the folds of one series; this run forecasts many (task.series_id): "
                        "backtest one series' file")
    config = dataclasses.replace(config, task=dataclasses.replace(config.task, end=0, test_rows=0))
    task = make_task(config)  # the whole series, to find the folds and score them
    T, H = len(task.series), task.horizon
    if run is not None and not refit:
        a, b = task.bounds["test"] if task.split_size("test") else task.bounds["val"]
        check(b > a, f"{source} has neither a test nor a validation split to backtest on; use --refit")
        size = fold_size or (b - a) // folds
        start = a
    else:
        # the rows the config holds out (its test split; a built-in series has none, then its
        # validation split's): a fold of one horizon would be one window, with no NRMSE
        held = task.bounds["test"] if task.split_size("test") else task.bounds["val"]
        size = fold_size or max(H, (held[1] - held[0]) // folds)
        start = task.window + H + 2  # the first fold's model needs some rows to train on
    check(size >= H, f"a fold of {size} rows cannot hold one horizon of {H} rows; use a larger --fold-size")
    origins = _folds(T, folds, size, start)
    out = Path(out_dir) if out_dir is not None else None
    rows = []
    model = None if refit or run is None else run.model
    if model is None and not refit:  # a config: one model, trained on the rows before the first fold
        model = _fit(config, origins[0] + size, size, out / "model" if out else None).model
    for k, o in enumerate(origins):
        fold_task, fold_model = task, model
        if refit:  # trained on rows [0, o), the fold held out as its test split
            result = _fit(config, o + size, size, out / f"fold-{k + 1}" if out else None)
            fold_task, fold_model = result.task, result.model
        metrics = fold_task.evaluate_rows(fold_model, o, o + size)
        metrics["_windows"] = fold_task.windows_forecasting(o, o + size)
        rows.append(_row(task, k, o, o + size, metrics))
    return Backtest(rows, refit)


def _fit(config: RunConfig, end: int, test_rows: int, out: Optional[Path]):
    """Train ``config`` on the series' first ``end`` rows, the last ``test_rows`` held out."""
    fold = dataclasses.replace(config, task=dataclasses.replace(config.task, end=end, test_rows=test_rows))
    return train(fold, out, overwrite=True) if out is not None else train(fold)

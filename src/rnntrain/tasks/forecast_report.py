"""What a forecasting run leaves besides its metrics: forecast.png with the recursive
forecast, the verdict against the baselines, attention.png (a mixin of :class:`ForecastTask`,
kept apart from the task protocol)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict

import numpy as np
import torch

from ..config.schema import check
from ..reporting.render import drawing
from .base import evaluating
from .baselines import verdict


# The recursive forecast of a run's report covers at most this many validation rows: it is
# one step at a time (each step waits for the last), so a long split would dominate the
# run (300,000 rows took 55 s of a 2-million-row file's 128 s), and an error fed back that
# many times has long settled. `rnntrain forecast --start val --steps N` forecasts any length.
RECURSIVE_LIMIT = 2000


class ForecastReport:
    """``report`` of :class:`~rnntrain.tasks.forecast.ForecastTask` (uses its windows,
    splits, scaler and recursive forecast)."""

    FILES = ("forecast.png", "attention.png")

    def report(self, model, out_dir: Path, plot: str = "forecast.png") -> Dict[str, Any]:
        """``plot`` (one-step predictions and the recursive forecast from the train/val
        boundary) and the recursive forecast's MSE over the validation rows."""
        check(self.series is not None, "report needs the task's data; build it from the data")
        split = "val" if self.split_size("val") else "train"
        w, (a, b) = self._windows[split], self.bounds[split]
        p = self._predict(model, w.x)[0.5].reshape(len(w.x), self.horizon, -1)
        one_step = self.to_data_units(p)[:, 0]  # (N, n_t), first horizon step
        # the figure's name, where the run draws figures (train.figures)
        out: Dict[str, Any] = {"plot": plot} if drawing() else {}
        out["one_step_split"] = split
        judged = "test" if self.split_size("test") else split
        judgement = verdict(self.evaluate(model, judged), ("persistence", "seasonal_naive", "mean"))
        if judgement:
            out["against_baselines"] = {"split": judged, "season": self.season, **judgement}
        out["normalize"] = self.normalize
        va, vb = self.bounds["val"]
        vb = min(vb, va + RECURSIVE_LIMIT)
        recursive = None
        if self.tgt_in_pos is not None and vb > va:
            levels = self.recursive_forecast(model, va, vb - va, levels=True)
            rec, truth = levels[0.5], self.series.values[va:vb][:, self.tgt_idx]
            out.update(recursive_mse=float(np.mean((rec - truth) ** 2)), recursive_points=vb - va)
            recursive = (np.arange(va, vb), rec, self.interval_of(levels))
        from ..reporting.plots import plot_forecast
        plot_forecast(Path(out_dir) / plot, np.arange(a, b),
                      self.series.values[a:b][:, self.tgt_idx],
                      (a + self.window + np.arange(len(one_step)), one_step),
                      recursive, self.targets, f"{self.series.name}: {split} split", self.series.time)
        self._report_attention(model, w.x[torch.linspace(0, len(w.x) - 1, min(4, len(w.x))).long()], out_dir)
        return out

    def _report_attention(self, model, x: torch.Tensor, out_dir) -> None:
        """attention.png for a model with attention: a decoder's weights (horizon step x
        window step) or a pooling readout's (one row), for a few windows."""
        with evaluating(model):
            if self.config.decoder:
                weights = model.decode(x, max_length=self.horizon, start=self._start(x)).attention
                rows = [f"t+{h + 1}" for h in range(self.horizon)]
            else:  # models without the method (duck-typed ones) have no attention
                weights = getattr(model, "attention_weights", lambda x: None)(x)
                weights, rows = (None, []) if weights is None else (weights[:, None], ["weight"])
        if weights is None:
            return
        from ..reporting.plots import plot_attention
        ticks = [str(t - self.window) if (self.window - t) % 5 == 0 else "" for t in range(self.window)]
        plot_attention(Path(out_dir) / "attention.png", [(w.cpu().numpy(), ticks, rows) for w in weights])

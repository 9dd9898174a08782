r"""``regress``: one value (or vector) per sequence.

Targets are standardised on the training split (the loss is the MSE in those units);
metrics in the original units: MSE, MAE, R² (1 - SSE/SST, averaged over target columns).
The baseline predicts the training mean (``mean_*``; its R² is about 0 by construction).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List

import numpy as np
import torch
from torch import Tensor

from ...errors import UserError
from ..base import Batch, mse
from ..scaling import Scaler
from .metrics import regression_metrics
from .sequences import SequenceSet
from .task import LabelledTask


class RegressTask(LabelledTask):
    """One real value or vector per sequence; see the module docstring."""

    headline = "mse"

    name = "regress"
    default_dataset = "waves-frequency"

    def _values(self, data: SequenceSet) -> np.ndarray:
        rows = []
        for i, y in enumerate(data.labels):
            try:
                rows.append(np.atleast_1d(np.asarray(y, dtype=np.float64)))
            except ValueError:
                raise UserError(f"{data.source}: the label of sequence {data.name(i)} is '{y}', not a "
                                "number; regression needs numeric targets (for classes use --task classify)") from None
        if len({len(r) for r in rows}) > 1:
            raise UserError(f"{data.source}: targets have different sizes; give one value (or one "
                            "equal-size vector) per sequence")
        y = np.stack(rows)
        if not np.isfinite(y).all():
            raise UserError(f"{data.source}: a target is missing or not finite (sequence "
                            f"{data.name(int(np.argwhere(~np.isfinite(y))[0, 0]))})")
        return y

    def fit_labels(self, train: SequenceSet) -> None:
        y = self._values(train)
        self.target_scaler = Scaler("standard").fit(y)
        self.mean = y.mean(0)
        self.n_targets = y.shape[1]

    def output_size(self) -> int:
        return self.n_targets

    def encode_targets(self, data: SequenceSet) -> Dict[str, Tensor]:
        y = self._values(data)
        if y.shape[1] != self.n_targets:
            raise UserError(f"{data.source}: {y.shape[1]} targets per sequence, training had {self.n_targets}")
        return {"y": torch.as_tensor(self.target_scaler.transform(y), dtype=self.dtype, device=self.device)}

    def loss(self, outputs: Tensor, batch: Batch) -> Tensor:
        return mse(outputs, batch.targets)

    def metrics(self, outputs: List[Tensor], batches: List[Batch], split: str) -> Dict[str, float]:
        inv = lambda t: self.target_scaler.inverse(torch.cat(t).double().cpu().numpy())
        truth, pred = inv([b.targets for b in batches]), inv(outputs)
        out = regression_metrics(truth, pred)
        base = regression_metrics(truth, np.broadcast_to(self.mean, truth.shape))
        out.update({f"mean_{k}": v for k, v in base.items()})
        return out

    def report(self, model, out_dir: Path) -> Dict[str, Any]:
        split = "test" if self.data["test"]["n"] else "val" if self.data["val"]["n"] else "train"
        self.report_attention(model, out_dir, split)
        return {}

    def prediction_rows(self, outputs: Tensor, batch: Batch, names: List[str]) -> List[Dict[str, Any]]:
        pred = self.target_scaler.inverse(outputs.double().cpu().numpy())
        return [{"id": n, **({"predicted": float(p[0])} if len(p) == 1 else
                             {f"predicted_{k}": float(v) for k, v in enumerate(p)})}
                for n, p in zip(names, pred)]

    def label_state(self) -> Dict[str, Any]:
        return {"scaler": self.target_scaler.state_dict(), "mean": self.mean.tolist()}

    def load_label_state(self, state: Dict[str, Any]) -> None:
        self.target_scaler = Scaler("standard")
        self.target_scaler.load_state_dict(state["scaler"])
        self.mean = np.asarray(state["mean"], dtype=np.float64)
        self.n_targets = len(self.mean)

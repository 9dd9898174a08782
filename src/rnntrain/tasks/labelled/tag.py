r"""``tag``: a label at every step (tagging, segmentation).

Outputs (N, L, C) logits at every step (the natural model is bidirectional: every step sees
its whole sequence); the loss is the cross-entropy over valid steps only. Metrics over
valid steps: per-step accuracy and macro-F1. The baseline predicts, at every position t,
the label most frequent at position t in the training split (``position_majority_*``;
positions past the longest training sequence take the overall most frequent label).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ...config.schema import check
from ...errors import UserError
from ..base import Batch
from .classify import WEIGHTS, ClassTargets, write_confusion
from .metrics import classification_metrics, confusion
from .sequences import SequenceSet
from .task import LabelledConfig, LabelledTask


@dataclass(frozen=True)
class TagConfig(LabelledConfig):
    class_weights: str = "none"  # none | balanced (w_c = N / (C n_c) over training steps)

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.class_weights in WEIGHTS,
              f"class_weights must be one of {', '.join(WEIGHTS)}, got '{self.class_weights}'")


class TagTask(ClassTargets, LabelledTask):
    """A class at every step; see the module docstring."""

    headline = "accuracy"

    name = "tag"
    default_dataset = "segments"
    per_step = True

    def _steps(self, data: SequenceSet) -> List[np.ndarray]:
        out = []
        for i, (x, y) in enumerate(zip(data.xs, data.labels)):
            if data.row_labels and not isinstance(y, np.ndarray):  # every row had this one label
                y = np.array([y] * len(x), dtype=object)
            if not isinstance(y, np.ndarray) or y.ndim != 1:
                raise UserError(f"{data.source}: sequence {data.name(i)} has one label for the whole "
                                "sequence; tagging needs a label per step (for one label per sequence use --task classify)")
            if len(y) != len(x):
                raise UserError(f"{data.source}: sequence {data.name(i)} has {len(x)} steps but {len(y)} labels")
            out.append(np.array([str(v) for v in y], dtype=object))
        return out

    def fit_labels(self, train: SequenceSet) -> None:
        steps = self._steps(train)
        self.fit_classes([str(v) for y in steps for v in y], train.source)
        L = max(len(y) for y in steps)
        counts = np.zeros((L, len(self.classes)), dtype=np.int64)
        for y in steps:
            np.add.at(counts, (np.arange(len(y)), self.ids(y, train.source)), 1)
        self.position_majority = counts.argmax(1)  # (L,)
        self._weight = None

    def check_known(self, data: SequenceSet) -> None:
        self.ids([v for y in self._steps(data) for v in y], data.source, "in the test file ")

    def output_size(self) -> int:
        return len(self.classes)

    def encode_targets(self, data: SequenceSet) -> Dict[str, Tensor]:
        steps = self._steps(data)
        y = torch.zeros(len(steps), max(len(s) for s in steps), dtype=torch.int64)
        for i, s in enumerate(steps):
            y[i, :len(s)] = torch.tensor(self.ids(s, data.source))
        return {"y": y.to(self.device)}

    def loss(self, outputs: Tensor, batch: Batch) -> Tensor:
        if self._weight is None or self._weight.dtype != outputs.dtype:
            self._weight = self.class_weight(self.config.class_weights, outputs.device, outputs.dtype)
        per = F.cross_entropy(outputs.transpose(1, 2), batch.targets, weight=self._weight, reduction="none")
        m = batch.mask.to(per.dtype)  # (N, L): padding counts for nothing
        if self._weight is None:
            return (per * m).sum() / m.sum().clamp(min=1)
        w = self._weight[batch.targets] * m  # weighted mean over valid steps, as F.cross_entropy's
        return (per * m).sum() / w.sum().clamp(min=1e-12)

    def loss_weight(self, batch: Batch) -> float:
        """The valid steps, each counted by its target's class weight (as :meth:`loss`)."""
        w = self.class_weight(self.config.class_weights, batch.targets.device, torch.float64)
        m = batch.mask.to(torch.float64)
        return float(m.sum() if w is None else (w[batch.targets] * m).sum())

    def _flat(self, outputs: List[Tensor], batches: List[Batch]):
        truth = np.concatenate([b.targets[b.mask].cpu().numpy() for b in batches])
        pred = np.concatenate([o.argmax(-1)[b.mask].cpu().numpy() for o, b in zip(outputs, batches)])
        pos = np.concatenate([torch.nonzero(b.mask)[:, 1].cpu().numpy() for b in batches])
        return truth, pred, pos

    def metrics(self, outputs: List[Tensor], batches: List[Batch], split: str) -> Dict[str, float]:
        truth, pred, pos = self._flat(outputs, batches)
        C = len(self.classes)
        out = classification_metrics(truth, pred, C)
        known = pos < len(self.position_majority)
        base = np.where(known, self.position_majority[np.minimum(pos, len(self.position_majority) - 1)],
                        self.majority)
        out.update({f"position_majority_{k}": v for k, v in classification_metrics(truth, base, C).items()})
        return out

    def report(self, model, out_dir: Path) -> Dict[str, Any]:
        split = "test" if self.data["test"]["n"] else "val" if self.data["val"]["n"] else "train"
        truth, pred, _ = self._flat(*self.outputs(model, split))
        write_confusion(out_dir, confusion(truth, pred, len(self.classes)), self.classes, split)
        return {"confusion_split": split, "classes": self.classes}

    def prediction_rows(self, outputs: Tensor, batch: Batch, names: List[str]) -> List[Dict[str, Any]]:
        pred = outputs.argmax(-1).cpu().numpy()
        return [{"id": n, "step": t, "predicted": self.classes[int(pred[i, t])]}
                for i, n in enumerate(names) for t in range(int(batch.lengths[i]))]

    def label_state(self) -> Dict[str, Any]:
        return {"classes": list(self.classes), "counts": self.counts.tolist(),
                "position_majority": self.position_majority.tolist()}

    def load_label_state(self, state: Dict[str, Any]) -> None:
        self.classes = list(state["classes"])
        self._class_id = {c: i for i, c in enumerate(self.classes)}
        self.counts = np.asarray(state["counts"])
        self.majority = int(np.argmax(self.counts))
        self.position_majority = np.asarray(state["position_majority"])
        self._weight = None

r"""``classify``: one class per sequence (speaker, gesture, activity, sentiment, fault).

Outputs (N, C) logits read at each sequence's last valid step (bidirectional: the backward
direction at step 0); loss the cross-entropy, optionally weighted per class
(``class_weights = "balanced"``: :math:`w_c = N / (C\, n_c)`, scikit-learn's rule).
Metrics: accuracy, balanced accuracy, macro-F1; the baseline is the majority class of
the training split (``majority_*``). The run writes the confusion matrix of the test split
(validation without one) as CSV and PNG and a per-class table in the summary.
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
from .metrics import classification_metrics, confusion, per_class
from .sequences import SequenceSet
from .task import LabelledConfig, LabelledTask

WEIGHTS = ("none", "balanced")


@dataclass(frozen=True)
class ClassifyConfig(LabelledConfig):
    class_weights: str = "none"  # none | balanced (w_c = N / (C n_c): rare classes weigh more)

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.class_weights in WEIGHTS,
              f"class_weights must be one of {', '.join(WEIGHTS)}, got '{self.class_weights}'")


def sorted_labels(labels) -> List[str]:
    """Distinct labels, numerically sorted when they are all numbers, else alphabetically."""
    distinct = sorted(set(labels))
    try:
        return sorted(distinct, key=float)
    except ValueError:
        return distinct


class ClassTargets:
    """Class names <-> ids 0..C-1, and the weights of an imbalanced training split."""

    def fit_classes(self, labels: List[str], source: str) -> None:
        self.classes = sorted_labels(labels)
        if len(self.classes) < 2:
            raise UserError(f"{source}: every training label is '{self.classes[0]}'; a classifier "
                            "needs at least two classes")
        self._class_id = {c: i for i, c in enumerate(self.classes)}
        counts = np.bincount([self._class_id[y] for y in labels], minlength=len(self.classes))
        self.counts = counts
        self.majority = int(np.argmax(counts))

    def ids(self, labels, source: str, where: str = "") -> List[int]:
        unknown = sorted({str(y) for y in labels} - set(self._class_id))
        if unknown:
            raise UserError(f"{source}: label(s) {unknown[:5]} never occur in the training data "
                            f"{where}(its classes: {', '.join(self.classes[:20])}); drop those "
                            "sequences or add examples of them to the training data")
        return [self._class_id[str(y)] for y in labels]

    def class_weight(self, kind: str, device, dtype) -> Tensor:
        if kind == "none":
            return None
        n = self.counts.astype(np.float64)
        w = np.where(n > 0, n.sum() / (len(n) * np.maximum(n, 1)), 0.0)
        return torch.as_tensor(w, dtype=dtype, device=device)


class ClassifyTask(ClassTargets, LabelledTask):
    """One class per sequence; see the module docstring."""

    headline = "accuracy"

    name = "classify"
    default_dataset = "waves"

    def fit_labels(self, train: SequenceSet) -> None:
        for i, y in enumerate(train.labels):
            if isinstance(y, np.ndarray):
                raise UserError(f"{train.source}: the labels of sequence {train.name(i)} vary from step "
                                "to step; that is a label per step: use --task tag")
        self.fit_classes([str(y) for y in train.labels], train.source)
        self._weight = None

    def strata(self, data: SequenceSet) -> List[np.ndarray]:
        ids = np.array(self.ids([str(y) for y in data.labels], data.source))
        return [np.nonzero(ids == c)[0] for c in range(len(self.classes))]

    def check_known(self, data: SequenceSet) -> None:
        self.ids([str(y) for y in data.labels], data.source, "in the test file ")

    def output_size(self) -> int:
        return len(self.classes)

    def encode_targets(self, data: SequenceSet) -> Dict[str, Tensor]:
        return {"y": torch.tensor(self.ids([str(y) for y in data.labels], data.source), device=self.device)}

    def loss(self, outputs: Tensor, batch: Batch) -> Tensor:
        if self._weight is None or self._weight.dtype != outputs.dtype:
            self._weight = self.class_weight(self.config.class_weights, outputs.device, outputs.dtype)
        return F.cross_entropy(outputs, batch.targets, weight=self._weight)

    def loss_weight(self, batch: Batch) -> float:
        """F.cross_entropy's mean divides by the targets' class weights."""
        w = self.class_weight(self.config.class_weights, batch.targets.device, torch.float64)
        return float(len(batch) if w is None else w[batch.targets].sum())

    def metrics(self, outputs: List[Tensor], batches: List[Batch], split: str) -> Dict[str, float]:
        truth = torch.cat([b.targets for b in batches]).cpu().numpy()
        pred = torch.cat([o.argmax(-1) for o in outputs]).cpu().numpy()
        C = len(self.classes)
        out = classification_metrics(truth, pred, C)
        base = classification_metrics(truth, np.full_like(truth, self.majority), C)
        out.update({f"majority_{k}": v for k, v in base.items()})
        return out

    def report(self, model, out_dir: Path) -> Dict[str, Any]:
        split = "test" if self.data["test"]["n"] else "val" if self.data["val"]["n"] else "train"
        outs, batches = self.outputs(model, split)
        truth = torch.cat([b.targets for b in batches]).cpu().numpy()
        pred = torch.cat([o.argmax(-1) for o in outs]).cpu().numpy()
        m = confusion(truth, pred, len(self.classes))
        write_confusion(out_dir, m, self.classes, split)
        self.report_attention(model, out_dir, split)
        pc = per_class(m)
        table = [{"class": c, **{k: float(pc[k][i]) for k in ("precision", "recall", "f1")},
                  "support": int(pc["support"][i])} for i, c in enumerate(self.classes)]
        return {"per_class": table, "confusion_split": split, "classes": self.classes}

    def prediction_rows(self, outputs: Tensor, batch: Batch, names: List[str]) -> List[Dict[str, Any]]:
        probs = torch.softmax(outputs.double(), -1).cpu().numpy()
        return [{"id": n, "predicted": self.classes[int(p.argmax())],
                 **{f"p_{c}": float(p[k]) for k, c in enumerate(self.classes)}}
                for n, p in zip(names, probs)]

    def label_state(self) -> Dict[str, Any]:
        return {"classes": list(self.classes), "counts": self.counts.tolist()}

    def load_label_state(self, state: Dict[str, Any]) -> None:
        self.classes = list(state["classes"])
        self._class_id = {c: i for i, c in enumerate(self.classes)}
        self.counts = np.asarray(state["counts"])
        self.majority = int(np.argmax(self.counts))
        self._weight = None


def write_confusion(out_dir: Path, m: np.ndarray, classes: List[str], split: str) -> None:
    """confusion_matrix.csv (rows true, columns predicted) and confusion_matrix.png."""
    out_dir = Path(out_dir)
    lines = ["true\\predicted," + ",".join(classes)]
    lines += [f"{c}," + ",".join(str(int(v)) for v in row) for c, row in zip(classes, m)]
    (out_dir / "confusion_matrix.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    from ...reporting.plots import plot_confusion
    plot_confusion(out_dir / "confusion_matrix.png", m, list(classes), split)

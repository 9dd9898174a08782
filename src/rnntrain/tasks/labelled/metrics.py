r"""Metrics of labelled-sequence tasks, on NumPy arrays (what summaries and tables hold).

Classes are integers 0..C-1. For C classes with confusion matrix :math:`M_{ij}` (true i,
predicted j): accuracy :math:`\sum_i M_{ii} / \sum M`; recall :math:`r_i = M_{ii} / \sum_j M_{ij}`;
precision :math:`p_i = M_{ii} / \sum_j M_{ji}`; :math:`F1_i = 2 p_i r_i / (p_i + r_i)` (0 when
both are 0); balanced accuracy = mean recall over the classes present; macro-F1 = mean F1
over the classes present in the truth or the predictions (scikit-learn's definitions).
"""
from __future__ import annotations

from typing import Dict, List, Sequence

import numpy as np


def confusion(truth: np.ndarray, pred: np.ndarray, classes: int) -> np.ndarray:
    """(C, C) counts, row = true class, column = predicted class."""
    m = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(m, (truth, pred), 1)
    return m


def per_class(m: np.ndarray) -> Dict[str, np.ndarray]:
    """precision, recall, f1 and support (true count) of every class of a confusion matrix."""
    tp = np.diag(m).astype(np.float64)
    support, predicted = m.sum(1), m.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(support > 0, tp / support, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    return {"precision": precision, "recall": recall, "f1": f1, "support": support}


def classification_metrics(truth: np.ndarray, pred: np.ndarray, classes: int) -> Dict[str, float]:
    """accuracy, balanced_accuracy and macro_f1 of integer labels."""
    m = confusion(truth, pred, classes)
    pc = per_class(m)
    present = m.sum(1) > 0
    seen = present | (m.sum(0) > 0)
    return {"accuracy": float(np.trace(m) / max(m.sum(), 1)),
            "balanced_accuracy": float(pc["recall"][present].mean()) if present.any() else 0.0,
            "macro_f1": float(pc["f1"][seen].mean()) if seen.any() else 0.0}


def regression_metrics(truth: np.ndarray, pred: np.ndarray) -> Dict[str, float]:
    """mse, mae and r2 (1 - SSE / SST, averaged over the target columns) of (N, O) arrays."""
    err = pred - truth
    sst = ((truth - truth.mean(0)) ** 2).sum(0)
    r2 = 1 - (err ** 2).sum(0) / np.where(sst > 0, sst, np.nan)
    return {"mse": float((err ** 2).mean()), "mae": float(np.abs(err).mean()),
            "r2": float(np.nanmean(r2)) if np.isfinite(r2).any() else float("nan")}


def edit_distance(a: Sequence, b: Sequence) -> int:
    """Levenshtein distance between two symbol sequences (the ``editdistance`` package's C++)."""
    import editdistance
    return int(editdistance.eval(list(a), list(b)))


def label_error_rate(refs: List[Sequence], hyps: List[Sequence]) -> float:
    """Total edit distance over total reference length (Graves et al. 2006's LER)."""
    total = sum(len(r) for r in refs)
    return sum(edit_distance(r, h) for r, h in zip(refs, hyps)) / max(total, 1)

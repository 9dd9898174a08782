r"""Per-column affine scaling of a series, fitted on the train split only.

.. math::  z = (x - \text{offset}) / \text{scale},\qquad x = z \cdot \text{scale} + \text{offset}

with, per column c of the train rows:

- ``none``:     offset 0,        scale 1;
- ``standard``: offset mean_c,   scale std_c (population std), so z has mean 0, std 1;
- ``minmax``:   offset min_c,    scale max_c - min_c, so z spans [0, 1].

A constant column gets scale 1 (not a division by zero). Fitting on train rows only
keeps validation and test statistics out of training (no leakage).
"""
from __future__ import annotations

from typing import Any, Dict, Sequence

import numpy as np
import torch

from ..config.schema import check

SCALES = ("none", "standard", "minmax")


class Scaler:
    """Affine per-column scaler; see the module docstring. Works on numpy arrays and
    torch tensors whose last dimension is the C columns."""

    def __init__(self, kind: str = "none"):
        check(kind in SCALES, f"unknown scale '{kind}'; choose one of: {', '.join(SCALES)}")
        self.kind = kind
        self.offset: np.ndarray | None = None  # (C,)
        self.scale: np.ndarray | None = None  # (C,)

    def fit(self, values: np.ndarray, fixed: Sequence[int] = ()) -> "Scaler":
        """Fit on train values (T, C); the columns ``fixed`` keep their units (offset 0,
        scale 1: e.g. a time step Δt, which a model reads as a duration); returns self."""
        values = np.asarray(values, dtype=np.float64)
        if self.kind == "standard":
            offset, scale = values.mean(0), values.std(0)
        elif self.kind == "minmax":
            offset, scale = values.min(0), values.max(0) - values.min(0)
        else:
            offset, scale = np.zeros(values.shape[1]), np.ones(values.shape[1])
        # relative tolerance: the mean of identical floats can differ from them by an ulp
        flat = scale <= 1e-12 * np.maximum(1.0, np.abs(offset))
        self.offset, self.scale = offset, np.where(flat, 1.0, scale)
        self.offset[list(fixed)], self.scale[list(fixed)] = 0.0, 1.0
        return self

    def _params(self, like):
        if self.offset is None:
            raise RuntimeError("Scaler used before fit() or load_state_dict()")
        if isinstance(like, torch.Tensor):
            return (torch.as_tensor(self.offset, dtype=like.dtype, device=like.device),
                    torch.as_tensor(self.scale, dtype=like.dtype, device=like.device))
        return self.offset, self.scale

    def transform(self, x):
        """Original units -> scaled units; x (..., C)."""
        offset, scale = self._params(x)
        return (x - offset) / scale

    def inverse(self, z):
        """Scaled units -> original units; z (..., C)."""
        offset, scale = self._params(z)
        return z * scale + offset

    def select(self, index: Sequence[int]) -> "Scaler":
        """The scaler of a subset of columns (e.g. the targets), in ``index`` order."""
        sub = Scaler(self.kind)
        sub.offset, sub.scale = self.offset[list(index)], self.scale[list(index)]
        return sub

    def state_dict(self) -> Dict[str, Any]:
        return {"kind": self.kind, "offset": self.offset.tolist(), "scale": self.scale.tolist()}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.kind = state["kind"]
        self.offset = np.asarray(state["offset"], dtype=np.float64)
        self.scale = np.asarray(state["scale"], dtype=np.float64)

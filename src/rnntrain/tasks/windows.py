r"""Each forecasting window relative to itself (``task.normalize``), and back.

For a window x (N, W, C) in scaled units::

    level   c = x[:, -1],  s = 1            (minus the last value)
    window  c = mean_t x,  s = max(std_t x, 0.1)   (RevIN-like)
    x' = (x - c) / s,   y' = (y - c_tgt) / s_tgt,   ŷ = c_tgt + s_tgt · output

with c_tgt, s_tgt read at the targets' input columns, so targets must be inputs.
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import torch
from torch import Tensor

from .forecast_config import WINDOW_STD_FLOOR


def window_stats(x: Tensor, kind: str) -> Tuple[Optional[Tensor], Optional[Tensor]]:
    """(center, spread) (N, 1, C) of windows x (N, W, C); (None, None) for kind "none"."""
    if kind == "none":
        return None, None
    if kind == "level":
        return x[:, -1:], torch.ones_like(x[:, -1:])
    return x.mean(1, keepdim=True), x.std(1, keepdim=True, unbiased=False).clamp(min=WINDOW_STD_FLOOR)


def to_window(v: Tensor, center: Optional[Tensor], spread: Optional[Tensor],
              targets: Optional[Sequence[int]] = None, *, back: bool = False) -> Tensor:
    """Scaled units -> the window's own (``back``: the reverse). v (N, W, C) inputs, or with
    ``targets`` (the targets' input columns) (N, H * n_targets) step-major targets."""
    if center is None:
        return v
    if targets is not None:
        c, s = center[:, :, list(targets)], spread[:, :, list(targets)]  # (N, 1, n_targets)
        steps = v.reshape(len(v), -1, len(targets))
        return (steps * s + c if back else (steps - c) / s).reshape(v.shape)
    return v * spread + center if back else (v - center) / spread

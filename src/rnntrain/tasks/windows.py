r"""Each forecasting window relative to itself (``task.normalize``), and back.

For a window x (N, W, C) in scaled units, its last row x_{-1}, the horizon step h = 1..H
and the season m::

    level   c = x_{-1},  s = 1                         (minus the last value)
    window  c = mean_t x,  s = max(std_t x, 0.1)       (RevIN-like)
    season  inputs as level; target step h centred on x_{h-1-m}, the value one season
            before it (seasonal differencing, as SARIMA's; needs W >= m >= H)
    x' = (x - c) / s,   y'_h = (y_h - c^y_h) / s^y,   ŷ_h = c^y_h + s^y · output_h

with c^y, s^y read at the predicted columns (which must be inputs) and c^y_h = c for
every h except under ``season``. Only the ``columns`` given are normalised; the others
(known-future inputs) keep their values.
"""
from __future__ import annotations

from typing import NamedTuple, Optional, Sequence

import torch
from torch import Tensor

from .forecast_config import WINDOW_STD_FLOOR


class Norm(NamedTuple):
    """A batch of windows' normalisation: inputs' center and spread (N, 1, C); targets'
    center (N, H or 1, P) and spread (N, 1, P)."""

    center: Tensor
    spread: Tensor
    target_center: Tensor
    target_spread: Tensor


def window_stats(x: Tensor, kind: str, columns: Optional[Sequence[int]], targets: Optional[Sequence[int]],
                 horizon: int = 1, season: int = 1) -> Optional[Norm]:
    """The :class:`Norm` of windows x (N, W, C), or None for kind "none". ``columns``: the
    inputs normalised (None: all); ``targets``: the predicted columns' positions among the
    inputs."""
    if kind == "none":
        return None
    if kind in ("level", "season"):
        center, spread = x[:, -1:], torch.ones_like(x[:, -1:])
    else:
        center = x.mean(1, keepdim=True)
        spread = x.std(1, keepdim=True, unbiased=False).clamp(min=WINDOW_STD_FLOOR)
    if columns is not None and len(columns) < x.shape[-1]:
        keep = torch.zeros(x.shape[-1], dtype=torch.bool, device=x.device)
        keep[list(columns)] = True
        center, spread = torch.where(keep, center, 0.0), torch.where(keep, spread, 1.0)
    t = list(targets)
    target_center = center[:, :, t]
    if kind == "season":  # step h's value one season back: window position W - m + h - 1
        W = x.shape[1]
        target_center = x[:, W - season:W - season + horizon][:, :, t]
    return Norm(center, spread, target_center, spread[:, :, t])


def to_window(v: Tensor, norm: Optional[Norm], targets: bool = False, *, back: bool = False) -> Tensor:
    """Scaled units -> the window's own (``back``: the reverse). v (N, W, C) inputs, or with
    ``targets`` (N, H * P) step-major predicted values."""
    if norm is None:
        return v
    if targets:
        c, s = norm.target_center, norm.target_spread  # (N, H or 1, P), (N, 1, P)
        steps = v.reshape(len(v), -1, c.shape[-1])
        return (steps * s + c if back else (steps - c) / s).reshape(v.shape)
    return v * norm.spread + norm.center if back else (v - norm.center) / norm.spread

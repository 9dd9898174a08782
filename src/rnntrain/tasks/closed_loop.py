r"""Closed-loop training windows (``task.rollout = k``): the training windows a forecaster
would see when its own predictions are fed back (Data as Demonstrator, Venkatraman, Hebert
& Bagnell 2015; the windows' counterpart of scheduled sampling).

Before each round after the first, the current model rolls every training window i
forward k times, H rows at a time, exactly as a recursive forecast does. Its j-th rolled
window holds the rows of true window i + jH with the last jH rows' predicted columns
replaced by the model's own predictions (known-future columns keep their true values);
its target is window i + jH's true target. Training on both the true and the rolled
windows teaches the model to return to the series from its own errors, which is what a
long recursive forecast needs. Everything is computed without gradients from the model's
weights at the start of the round, so a resumed run rebuilds the same windows.

Shapes: x (N, W, C) and y (N, H·P) scaled units in, (ΣN_j, W, C) and (ΣN_j, H·P) out,
N_j = N - jH.
"""
from __future__ import annotations

from typing import Tuple

import torch
from torch import Tensor

from .base import evaluating


def rolled_windows(task, model, x: Tensor, y: Tensor, k: int) -> Tuple[Tensor, Tensor]:
    """The k rolled copies (module docstring) of consecutive training windows x, y."""
    H, P = task.horizon, len(task.outputs)
    xs, ys = [], []
    cur = x
    with evaluating(model):
        for j in range(1, k + 1):
            n = len(x) - j * H  # windows whose successor jH rows on is a training window
            if n <= 0:
                break
            cur = cur[:n]
            pred = task.predict_windows(model, cur).reshape(n, H, P)  # (n, H, P) scaled
            rows = x[j * H:j * H + n, -H:].clone()  # the true next rows (known columns kept)
            rows[:, :, task.out_in_pos] = pred
            cur = torch.cat([cur[:, H:], rows], 1)
            xs.append(cur)
            ys.append(y[j * H:j * H + n])
    if not xs:
        return x[:0], y[:0]
    return torch.cat(xs), torch.cat(ys)

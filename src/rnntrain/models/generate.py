"""Closed-loop generation: a many-to-one model's output fed back as its next input.

Jaeger (2001, GMD Report 148, sec. 5) runs an echo state network *teacher-forced* on a
context (the true previous output enters the network) and then *free-running*: its own
output replaces the true one, for any horizon. With the output fed back through the input
columns it predicts, that is, for every model of the calling convention
``outputs, state = model(inputs, state)`` (tasks/base.py)::

    y, state = model(context, None)              # teacher forcing over the context
    repeat: u[feedback] = y; y, state = model(u[None], state)   # one step, state carried

Unlike a sliding-window recursive forecast (``ForecastTask.recursive_forecast``, which
reruns the last ``window`` inputs from the zero state at every step), the state carries
over, so the warm-up is the whole context and each step costs one cell step.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import Tensor

from ..tasks.base import evaluating


def closed_loop(model, context: Tensor, steps: int, *, feedback: Optional[Sequence[int]] = None,
                exogenous: Optional[Tensor] = None) -> Tensor:
    """Free-running outputs after teacher forcing on ``context``.

    Args:
        model: many-to-one, ``model(inputs (N, L, F), state) -> ((N, O), state)``.
        context: (N, L, F) inputs read teacher-forced (the warm-up).
        steps: outputs to generate; output k (0-based) is the prediction after reading
            context and k fed-back inputs.
        feedback: the O input positions that receive the outputs (default: all F, O = F).
        exogenous: (N, steps - 1, F) the known inputs of the other positions at each
            fed-back step (zeros when None).
    Returns: (N, steps, O) outputs.
    """
    N, _, F = context.shape
    pos = list(range(F)) if feedback is None else list(feedback)
    outs = []
    with evaluating(model):
        y, state = model(context, None)  # (N, O)
        if y.shape[-1] != len(pos):
            raise ValueError(f"closed loop needs one output per fed-back input: outputs {y.shape[-1]}, "
                             f"feedback positions {len(pos)}")
        outs.append(y)
        for k in range(steps - 1):
            u = exogenous[:, k].clone() if exogenous is not None else y.new_zeros(N, F)  # (N, F)
            u[:, pos] = y
            y, state = model(u[:, None, :], state)  # one step, state carried
            outs.append(y)
    return torch.stack(outs, dim=1)  # (N, steps, O)

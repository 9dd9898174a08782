r"""Backpropagation through time, full and truncated (Werbos 1990; Williams & Peng 1990).

For a loss :math:`L = \sum_t L^{(t)}` the gradient with respect to the recurrent weights is

.. math::
    \frac{\partial L}{\partial W_{hh}} = \sum_t \frac{\partial L^{(t)}}{\partial h^{(t)}}
        \sum_{k \le t} \Big(\prod_{i=k+1}^{t} \frac{\partial h^{(i)}}{\partial h^{(i-1)}}\Big)
        \frac{\partial h^{(k)}}{\partial W_{hh}},

computed by autograd through the unrolled core. *Full* BPTT (``truncation = 0``)
backpropagates through each whole sequence (for text streams: each whole chunk, with
the state carried, detached, to the next chunk). *Truncated* BPTT (``truncation = k``)
cuts every batch into pieces of k steps, updates after each piece, and carries the
state detached between pieces (and across batches of a stream), so gradients reach at
most k steps back. For many-to-one tasks the pieces before the last one only advance
the state.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Optional

import torch

from ..config.schema import check
from ..core import detach_state
from ..optim import Updater
from .base import Algorithm, Context, StepCallback, register


@dataclass(frozen=True)
class BPTTOptions:
    truncation: int = 0  # 0: full BPTT; k > 0: truncated BPTT with pieces of k steps

    def __post_init__(self) -> None:
        check(self.truncation >= 0, f"truncation must be >= 0 (0 = full BPTT), got {self.truncation}")


@register
class BPTT(Algorithm):
    """Gradient descent with gradients from backpropagation through time; see module doc."""

    name = "bptt"
    unit = "epoch"
    Options = BPTTOptions

    def __init__(self, ctx: Context, options: BPTTOptions) -> None:
        super().__init__(ctx, options)
        self.updater = Updater(ctx.optim, ctx.model.parameters(), ctx.rounds)

    def _pieces(self, batch):
        """(inputs, targets or None) pieces of at most ``truncation`` steps."""
        k = self.options.truncation
        L = batch.inputs.shape[1]
        if k == 0 or k >= L:
            return [(batch.inputs, batch.targets)]
        per_step = self.ctx.task.spec.per_step
        pieces = []
        for start in range(0, L, k):
            x = batch.inputs[:, start:start + k]
            last = start + k >= L
            y = batch.targets[:, start:start + k] if per_step else (batch.targets if last else None)
            pieces.append((x, y))
        return pieces

    def run_round(self, on_step: Optional[StepCallback] = None) -> Dict[str, float]:
        model, task, updater = self.ctx.model, self.ctx.task, self.updater
        model.train()
        total = torch.zeros((), dtype=torch.float64)
        count = 0
        state = None
        for batch in task.batches("train", self.ctx.batch_size, generator=self.ctx.generator):
            if not batch.continues:
                state = None
            for x, y in self._pieces(batch):
                if y is None:  # many-to-one: earlier pieces only move the state forward
                    with torch.no_grad():
                        _, state = model(x, state)
                    continue
                updater.zero_grad()
                out, state = model(x, state)
                loss = task.loss(out, y)
                loss.backward()
                updater.step()
                state = detach_state(state)
                n = x.shape[0]
                total += loss.detach().double().cpu() * n
                count += n
                if on_step is not None:
                    on_step(float(loss.detach()))
        metrics = {"loss": float(total) / max(count, 1)}
        metrics.update(updater.end_round())
        return metrics

    def state_dict(self) -> Dict[str, Any]:
        return {"updater": self.updater.state_dict()}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.updater.load_state_dict(state["updater"])

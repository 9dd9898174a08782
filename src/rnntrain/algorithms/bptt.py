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
most k steps back. For many-to-one tasks a piece's loss is over the sequences whose last
step lies in it (without lengths: the last piece); pieces where no sequence ends only
advance the state. Ragged batches (``batch.lengths``) are masked by the core: a sequence's
state is frozen after its end, and per-step losses ignore padding.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

import torch
from torch import Tensor

from ..config.schema import check
from ..core import detach_state
from ..errors import UserError
from ..optim import Updater
from ..parallel import sum_gradients
from ..tasks.base import Batch
from .base import FORWARD, TRAIN_STEP, Algorithm, Context, StepCallback, register


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

    regularized = True  # dropout, zoneout, weight-drop act in its training forward
    parallel = "data"  # under torchrun: rows of every batch per process, gradients summed

    @classmethod
    def refusal(cls, spec, model, options) -> Optional[str]:
        if options.truncation and not spec.aligned:
            return ("truncated BPTT cuts sequences into pieces, but this task's labels are "
                    "not aligned with the steps (CTC, seq2seq need whole sequences): set "
                    "algorithm.truncation = 0 (--truncation 0)")
        return None

    def __init__(self, ctx: Context, options: BPTTOptions) -> None:
        super().__init__(ctx, options)
        if options.truncation and ctx.model.reads_all_steps and not ctx.model.per_step:
            raise UserError("truncated BPTT reads a sequence's label from the piece where it ends, "
                            "but the readout pools every step: set algorithm.truncation = 0 or "
                            "model.readout = \"last\"")
        self.updater = Updater(ctx.optim, ctx.model.parameters(), ctx.rounds, model=ctx.model)

    def _pieces(self, batch: Batch) -> List[Tuple[Batch, Optional[Tensor]]]:
        """(piece, who) pieces of at most ``truncation`` steps. ``who`` (N,) bool marks the
        sequences the piece's loss is over: all for per-step targets; for a target per
        sequence, those whose last step lies in the piece (None: nobody, the piece only
        moves the state forward). Without lengths that is the last piece, as before."""
        k, L = self.options.truncation, batch.steps
        if k == 0 or k >= L:
            return [(batch, torch.ones(len(batch), dtype=torch.bool))]
        per_step = self.ctx.task.spec.per_step
        pieces = []
        for start in range(0, L, k):
            piece = batch.piece(start, start + k, per_step)
            who = torch.ones(len(batch), dtype=torch.bool) if per_step else batch.ends_within(start, start + k)
            pieces.append((piece, who if bool(who.any()) else None))
        return pieces

    def run_round(self, on_step: Optional[StepCallback] = None) -> Dict[str, float]:
        """One epoch. Under torchrun each process takes its rows of every batch (a stream's
        rows are its streams) and the gradients are summed over processes, each weighted by
        its rows' share of the batch's loss (``Task.loss_weight``): every process takes the
        step one process would take on the whole batch (rnntrain/parallel.py)."""
        model, task, updater, dist = self.ctx.model, self.ctx.task, self.updater, self.ctx.dist
        model.train()
        total = torch.zeros((), dtype=torch.float64)  # on the loss's device from the first step
        count = 0
        state = None
        carry = self.options.truncation > 0  # pieces hand their final state on
        for batch in task.batches("train", self.ctx.batch_size, generator=self.ctx.generator):
            if not batch.continues:
                state = None
            rows = dist.shard(len(batch)) if dist.active else None
            for piece, who in self._pieces(batch):
                # the state is read on only by the next piece or a continuing batch
                need_state = carry or batch.lengths is None
                mine = piece if rows is None else piece.select(rows)
                if len(mine) == 0:  # a last batch smaller than the processes: this one has no rows
                    if who is not None:
                        updater.zero_grad()
                        (loss,) = sum_gradients(dist, updater.params, torch.zeros(()))
                        updater.step()
                        total += loss.double().cpu() * int(who.sum())
                        count += int(who.sum())
                    continue
                if who is None:  # nobody's target here: the piece only moves the state forward
                    with torch.no_grad():
                        _, state = model(mine.inputs, state, lengths=mine.lengths)
                    self.ctx.work.add(mine.work_steps, FORWARD)
                    continue
                updater.zero_grad()
                out, state = model(mine.inputs, state, lengths=mine.lengths, final_state=need_state,
                                   decoder=mine.decoder)
                mine_who = who if rows is None else who[rows]
                loss = self._loss(out, mine, mine_who, piece.select(who) if rows is not None else None)
                loss.backward()
                self.ctx.work.add(mine.work_steps, TRAIN_STEP)
                (loss,) = sum_gradients(dist, updater.params, loss.detach())
                updater.step()
                state = detach_state(state)
                n = len(who) if piece is batch else int(who.sum())  # whole batch: who is all
                # one copy to the host per round, not per step: total + n * loss in float64
                total = total.to(loss.device).add_(loss.detach(), alpha=n)
                count += n
                if on_step is not None:
                    on_step(float(loss.detach()))
        metrics = {"loss": float(total) / max(count, 1)}
        metrics.update(updater.end_round())
        return metrics

    def _loss(self, out: Tensor, rows: Batch, who: Tensor, whole: Optional[Batch]) -> Tensor:
        """The loss over the sequences ``who`` of ``rows``; with ``whole`` (the piece's scored
        sequences in every process), weighted by these rows' share of its loss."""
        task = self.ctx.task
        if not bool(who.any()):  # none of this process's rows is scored here: zero gradients
            return out.sum() * 0.0
        scored = rows if bool(who.all()) else rows.select(who)
        loss = task.loss(out if bool(who.all()) else out[who.to(out.device)], scored)
        if whole is None:
            return loss
        return loss * (task.loss_weight(scored) / task.loss_weight(whole))

    def state_dict(self) -> Dict[str, Any]:
        return {"updater": self.updater.state_dict()}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.updater.load_state_dict(state["updater"])

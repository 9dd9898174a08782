r"""What the online gradient algorithms (RTRL, UORO, SnAp, CRBP) share.

Real-time recurrent learning (Williams & Zipser 1989) carries the *influence* of the
recurrent parameters on the state forward in time instead of storing the sequence:

.. math::
    M_t = \frac{\partial s_t}{\partial \theta} = D_t M_{t-1} + I_t, \qquad
    D_t = \frac{\partial f}{\partial s}(s_{t-1}, x_t), \quad
    I_t = \frac{\partial f}{\partial \theta}(s_{t-1}, x_t), \qquad
    \frac{dL_t}{d\theta} = \frac{\partial L_t}{\partial s_t} M_t,

where ``s_t = f(θ, s_{t-1}, x_t)`` is one step of the whole recurrent core (every layer,
flattened: ``s = [h_layer0 .. h_layerK, c_layer0 .. c_layerK]``). The algorithms differ
only in how they store and advance ``M`` (exactly, as a rank-one estimate, on a sparsity
pattern); each implements a :class:`Sensitivity`. The rest lives here, once:

- :class:`StepFunction` / :class:`ModelStep` (``step_function.py``): the core's single step ``Recurrent.step`` as
  a pure function of a flat parameter vector, its Jacobians D and I and the products D·v
  and u·I: for Elman, LSTM, GRU and local stacks one call of the compiled products kernel
  (``core/kernels/products.cpp``); for other cells plain autograd through per-row copies of
  the weights (``ModelStep._pullback``: one backward pass for D and I, two for the products). The cell's equations are never restated: everything is derived from the cell's
  own step.
- :class:`OnlineAlgorithm`: the stream loop (one step at a time, state carried across
  batches that ``continue``), the credit ``∂L_t/∂s_t`` and the readout's gradient by
  autograd through the readout alone, the k-step update schedule, the ``Updater`` and the
  checkpointed state (carried state, influence, pending gradient).

Shapes: ``N`` streams, ``S`` state size (arity·layers·H), ``P`` recurrent parameters,
``F`` encoded input features.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

import torch
from torch import Tensor, nn

from ..config.schema import check
from ..core import Recurrent
from ..errors import UserError
from ..optim import Updater
from ..tasks.base import Batch
from .base import Algorithm, Context, StepCallback

from .step_function import ModelStep, StepFunction  # noqa: F401  (re-exported)


# ----------------------------------------------------------------- sensitivities

class Sensitivity(ABC):
    """How an algorithm stores and advances the influence ``M_t = ∂s_t/∂θ`` of N streams."""

    def __init__(self, fn: StepFunction, generator: Optional[torch.Generator] = None) -> None:
        self.fn = fn
        self.generator = generator

    @property
    @abstractmethod
    def cost(self) -> float:
        """Forward-step equivalents of one stream's step (:class:`~rnntrain.algorithms.base.Work`)."""

    @abstractmethod
    def reset(self, batch: int, like: Tensor) -> None:
        """Zero influence for ``batch`` fresh streams (dtype and device of ``like``)."""

    @abstractmethod
    def advance(self, theta: Tensor, s: Tensor, x: Tensor) -> Tensor:
        """Step the state s_{t-1} (N, S) -> s_t with input x (N, F), advancing M_{t-1} -> M_t."""

    @abstractmethod
    def gradient(self, c: Tensor) -> Tensor:
        """Per-stream gradient (estimate) ``c_n M_t[n]`` (N, P) from the credit c = ∂L_t/∂s_t (N, S)."""

    @abstractmethod
    def state_dict(self) -> Dict[str, Any]:
        ...

    @abstractmethod
    def load_state_dict(self, state: Dict[str, Any]) -> None:
        ...


# ----------------------------------------------------------------- the algorithm

@dataclass(frozen=True)
class OnlineOptions:
    update_every: int = 1  # apply the accumulated gradient every k loss steps (0: once per batch)

    def __post_init__(self) -> None:
        check(self.update_every >= 0,
              f"update_every must be >= 0 (0 = once per batch), got {self.update_every}")


def check_online_model(model: nn.Module, name: str, spec=None) -> Recurrent:
    """The model's recurrent core, or a UserError unless an online algorithm can run it."""
    rnn = model.core(name)
    if model.reads_all_steps and not model.per_step:
        raise UserError(f"{name} credits each sequence's label at its final state, but the readout "
                        f"pools every step: use --set model.readout=last or --algorithm bptt")
    if rnn.num_layers > 1 and rnn.dropout > 0:
        raise UserError(f"{name} steps one time step at a time, where dropout between layers is "
                        f"not applied: set model.dropout = 0")
    if model.parameters_of("encoder"):
        raise UserError(f"{name} carries the influence of the recurrent core's parameters only; "
                        f"learned embeddings are not covered: set model.embedding = 0 (one-hot)")
    return rnn


class OnlineAlgorithm(Algorithm):
    """Online gradient descent with a :class:`Sensitivity`; subclasses build the sensitivity.

    Every batch is run one time step at a time. At every step with a target (every step of
    a per-step task; the last step of a many-to-one window) the loss L_t of that step is
    back-propagated through the readout alone, giving the readout's gradient and the credit
    c_t = ∂L_t/∂s_t; the recurrent gradient is c_t M_t. After ``update_every`` such steps
    (and at the end of every batch) the mean of the accumulated gradients is applied by the
    Updater (optimizer, clipping). State and influence carry across batches that continue a
    stream and restart at zero otherwise; weights change under a running stream, as in
    Williams & Zipser's "real-time" RTRL.
    """

    unit = "epoch"
    Options = OnlineOptions
    forward_only = True

    @classmethod
    def refusal(cls, spec, model, options) -> Optional[str]:
        name = cls.name
        if not spec.aligned:
            return (f"{name} assigns credit step by step, but this task's labels are not aligned with the "
                    f"steps (CTC's and seq2seq's losses need whole sequences): use --algorithm bptt")
        if model.fixed_reservoir:
            return (f"{name} learns recurrent weights online; cell 'esn' is a fixed reservoir whose readout "
                    f"--algorithm esn fits: use --algorithm esn, or --cell rnn, lstm, gru or local")
        if model.bidirectional:
            return (f"{name} learns online, forward in time; a bidirectional network needs the whole "
                    f"sequence: add --no-bidirectional (model.bidirectional = false) or use --algorithm bptt")
        return None

    def __init__(self, ctx: Context, options: OnlineOptions) -> None:
        super().__init__(ctx, options)
        self.core = check_online_model(ctx.model, self.name, ctx.task.spec)
        self.fn = ModelStep(self.core)
        self.sens = self.make_sensitivity(self.fn)
        self.updater = Updater(ctx.optim, ctx.model.parameters(), ctx.rounds, model=ctx.model)
        self.state: Optional[Tensor] = None  # (N, S) carried between continuing batches
        self.grad: Optional[Tensor] = None  # (P,) recurrent gradient accumulated since the last update
        self.pending = 0.0  # loss steps accumulated since the last update, each weighted by its share of streams
        self.pending_steps = 0  # loss steps since the last update (the update_every cadence)
        self.keep_streams = False  # gradient checks: keep the per-stream gradients (N, P)

    @abstractmethod
    def make_sensitivity(self, fn: StepFunction) -> Sensitivity:
        ...

    # -- one batch -----------------------------------------------------------------------
    def begin(self, batch) -> None:
        """Start or continue the streams of ``batch``."""
        N = batch.inputs.shape[0]
        if not batch.continues or self.state is None or self.state.shape[0] != N:
            p = next(self.core.parameters())
            self.state = torch.zeros(N, self.fn.S, dtype=p.dtype, device=p.device)
            self.sens.reset(N, self.state)

    def credit(self, s: Tensor, target: Batch, who: Optional[Tensor] = None, weight: float = 1.0) -> Tensor:
        """Loss of one step over the streams ``who`` (N,) bool (None: all), scaled by
        ``weight``; accumulates the readout's gradient (p.grad) and c·M (self.grad)."""
        model = self.ctx.model
        leaf = s.detach().requires_grad_(True)
        out = model.read(leaf[:, None, self.fn.readout_slice])  # (N, 1, O) or (N, O)
        loss = self.ctx.task.loss(out if who is None else out[who.to(out.device)], target)
        (loss * weight if weight != 1.0 else loss).backward()
        g = self.sens.gradient(leaf.grad)  # (N, P): zero rows for streams outside `who`
        g = g if self.keep_streams else g.sum(0)
        self.grad = g if self.grad is None else self.grad + g
        self.pending += weight
        self.pending_steps += 1
        return loss.detach()

    def apply(self) -> None:
        """Mean of the pending gradients -> p.grad -> Updater.step."""
        if self.pending == 0:
            return
        model = self.ctx.model
        for p in model.parameters_of("readout"):
            if p.grad is not None:
                p.grad /= self.pending
        for p, g in zip(self.core.parameters(), self.fn.split(self.grad / self.pending)):
            p.grad = g.clone()
        self.updater.step()
        self.updater.zero_grad()
        self.grad, self.pending, self.pending_steps = None, 0.0, 0

    def run_batch(self, batch, *, update: bool = True, on_step: Optional[StepCallback] = None
                  ) -> Tuple[Tensor, int]:
        """Stream through ``batch`` step by step; returns (sum of step losses × N, count).

        Ragged batches: a per-step loss at step t is over the streams still running (its
        weight their share of the batch, so a batch's gradient is the mean over its valid
        steps, as BPTT's); a sequence's target is credited at its own last step. A stream
        that has ended gets no credit, so its state and influence are never read again."""
        model, per_step = self.ctx.model, self.ctx.task.spec.per_step
        k = self.options.update_every
        self.begin(batch)
        with torch.no_grad():
            x = model.encode(batch.inputs)  # (N, L, F): encoders here have no parameters
        N, L = x.shape[0], x.shape[1]
        total = torch.zeros((), dtype=torch.float64)
        count = 0
        for t in range(L):
            with torch.no_grad():
                self.state = self.sens.advance(self.fn.theta(), self.state, x[:, t])  # (N, S)
            self.ctx.work.add(N, self.sens.cost)
            if per_step:
                target, who = batch.piece(t, t + 1, True), None
                n = N if batch.lengths is None else int((batch.lengths > t).sum())
            else:
                ends = batch.ends_within(t, t + 1)
                n = int(ends.sum())
                target, who = (batch, None) if n == N else (batch.select(ends), ends)
            if n == 0:
                continue
            loss = self.credit(self.state, target, who, n / N)
            total += loss.double().cpu() * n
            count += n
            if update and k and self.pending_steps >= k:
                self.apply()
                if on_step is not None:
                    on_step(float(loss))
        if update and self.pending:
            self.apply()
            if on_step is not None:
                on_step(float(loss))
        return total, count

    def run_round(self, on_step: Optional[StepCallback] = None) -> Dict[str, float]:
        self.ctx.model.train()
        total, count = torch.zeros((), dtype=torch.float64), 0
        for batch in self.ctx.task.batches("train", self.ctx.batch_size, generator=self.ctx.generator):
            t, c = self.run_batch(batch, on_step=on_step)
            total += t
            count += c
        metrics = {"loss": float(total) / max(count, 1)}
        metrics.update(self.updater.end_round())
        return metrics

    # -- gradient checks -------------------------------------------------------------------
    def grad_of(self, p: nn.Parameter) -> Tensor:
        """The mean gradient accumulated by ``run_batch(update=False)`` for parameter ``p``."""
        rec = dict(zip(map(id, self.core.parameters()), self.fn.split(self.grad / self.pending)))
        return rec[id(p)] if id(p) in rec else p.grad / self.pending

    def per_stream_gradients(self, batch) -> List[Tensor]:
        """Per-stream gradients of ``batch`` (weights fixed), one (N, *shape) per parameter:
        row n is stream n's estimate of the gradient of the mean loss, so the mean over the
        copies of a group of streams is that group's gradient (UORO's independent samples).
        Immediate gradients (the readout's) are exact and given to every stream."""
        N = batch.inputs.shape[0]
        self.keep_streams = True
        try:
            for p in self.ctx.model.parameters():
                p.grad = None
            self.run_batch(batch, update=False)
            rec = {id(p): g for p, g in zip(self.core.parameters(),
                                             [t.reshape(N, *shape) for t, shape in
                                              zip((self.grad / self.pending).split(self.fn.sizes, 1), self.fn.shapes)])}
            out = []
            for p in self.ctx.model.parameters():
                if id(p) in rec:
                    out.append(rec[id(p)] * N)
                else:  # immediate gradients (readout): exact, shared equally by the streams
                    out.append((p.grad / self.pending).expand(N, *p.shape) * 1.0)
            return out
        finally:
            self.keep_streams = False
            self.grad, self.pending, self.pending_steps = None, 0.0, 0

    # -- checkpoint ----------------------------------------------------------------------
    def state_dict(self) -> Dict[str, Any]:
        return {"updater": self.updater.state_dict(), "state": self.state, "grad": self.grad,
                "pending": self.pending, "pending_steps": self.pending_steps,
                "sensitivity": self.sens.state_dict()}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.updater.load_state_dict(state["updater"])
        self.state, self.grad, self.pending = state["state"], state["grad"], state["pending"]
        self.pending_steps = state["pending_steps"]
        self.sens.load_state_dict(state["sensitivity"])

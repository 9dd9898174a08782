"""The step path: one layer, one direction, unrolled over time by the cell's own single step.

What ``Recurrent``'s step path and the echo state network's differentiable collection run;
made of ordinary ops, so it works under every ``torch.func`` transform (vmap, jvp, grad).
"""
from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from typing import Iterator, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from .cells import Cell, State
from .regularize import zone


def unroll_layer(cell: Cell, x: Tensor, state: State, w_ih: Tensor, w_hh: Tensor,
                 b_ih: Optional[Tensor], b_hh: Optional[Tensor], *rest: Tensor,
                 reverse: bool = False, mask: Optional[Tensor] = None, keep: Optional[Tensor] = None,
                 dt: Optional[Tensor] = None, zoneout: float = 0.0,
                 training: bool = False) -> Tuple[Tensor, State]:
    """Run one layer in one direction over time by the cell's single step.

    x (L, N, H_in), state tuple of (N, H) -> (outputs (L, N, R), final state); ``rest`` the
    cell's further weights (W_hr, its extras).
    ``mask`` (L, N, 1) bool, True at valid steps: a sequence's state is frozen and its output
    is zero at the steps after its end (so reversed, the state waits at h_0 until the
    sequence's last step, where the backward direction starts). ``keep`` (N, R) recurrent
    dropout's mask, ``zoneout`` its rate, ``dt`` (L, N, 1) each step's Δt (a timed cell;
    core/regularize.py, core/variants.py).
    """
    gx = F.linear(x, w_ih, b_ih)  # (L, N, G*H): the input part of every step in one product
    if cell.bias_in_gx and b_hh is not None:  # b_hh only meets gx + b_hh: added once, not per step
        gx, b_hh = gx + b_hh, None
    steps = gx.unbind(0)  # unbind, not gx[t]: indexing in the loop makes backward ~10x slower
    masks = mask.unbind(0) if mask is not None else None
    dts = dt.unbind(0) if dt is not None else None
    weights = (w_hh, b_hh, *rest)
    order = range(len(steps) - 1, -1, -1) if reverse else range(len(steps))
    outs: List[Tensor] = [None] * len(steps)  # type: ignore[list-item]
    for t in order:
        new = cell.advance(steps[t], state, weights, keep, None if dts is None else dts[t])
        if zoneout:
            new = zone(new, state, zoneout, training)
        if masks is None:
            state = new
            outs[t] = new[0]
        else:
            m = masks[t]  # (N, 1)
            state = tuple(torch.where(m, a, b) for a, b in zip(new, state))
            outs[t] = torch.where(m, new[0], torch.zeros_like(new[0]))
    return stack_steps(outs), state


def transform_running() -> bool:
    """Whether any torch.func transform is running (0.2 us): outside one, no tensor can be
    wrapped, so :func:`_under_transform` need not look at each."""
    return torch._C._functorch.maybe_current_level() is not None


def _under_transform(tensors) -> bool:
    """True inside torch.func transforms (vmap, jvp, grad) of any of ``tensors`` (input,
    state, weights): the fused kernel has no batching or forward-mode rules, while the
    step path, made of ordinary ops, works under all of them."""
    if not transform_running():
        return False
    is_wrapped = torch._C._functorch.is_functorch_wrapped_tensor
    return any(t is not None and is_wrapped(t) for t in tensors)


_TWICE: ContextVar[bool] = ContextVar("rnntrain_twice_differentiable", default=False)


@contextmanager
def stepping() -> Iterator[None]:
    """Within (this thread or task): every ``Recurrent`` runs the step path, whose backward
    pass is itself differentiable (ordinary ops), and time loops stack their steps by
    :func:`stack_steps`. The compiled kernel's backward is one C++ node that autograd
    cannot differentiate again, and torch's fused kernels promise no double backward on
    every device; Hessian-free's Gauss-Newton products differentiate a backward pass."""
    token = _TWICE.set(True)
    try:
        yield
    finally:
        _TWICE.reset(token)


def twice_differentiable() -> bool:
    """Whether the caller is within :func:`stepping`."""
    return _TWICE.get()


def stack_steps(steps: Sequence[Tensor], dim: int = 0) -> Tensor:
    """``torch.stack`` of a time loop's per-step tensors. Within :func:`stepping`, a stack
    whose backward is one ``unbind``: torch.stack's backward selects each step, and each
    select differentiated again (Hessian-free's products) writes a zero tensor the size of
    the whole stack, quadratic in the steps (a 64-unit RNN over 100 steps: a product 2x
    slower than by jvp; 3x faster with this)."""
    return _StackSteps.apply(dim, *steps) if twice_differentiable() else torch.stack(steps, dim)


class _StackSteps(torch.autograd.Function):
    """torch.stack with the backward ``grad.unbind(dim)``, whose own backward is one stack."""

    @staticmethod
    def forward(ctx, dim: int, *steps: Tensor) -> Tensor:
        ctx.dim = dim
        return torch.stack(steps, dim)

    @staticmethod
    def backward(ctx, grad: Tensor):
        return (None, *grad.unbind(ctx.dim))

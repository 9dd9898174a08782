r"""Real-time recurrent learning, exact (Williams & Zipser 1989, "A learning algorithm for
continually running fully recurrent neural networks", Neural Computation 1(2), eq. 11-12).

The influence matrix of every stream is kept densely and advanced by

.. math::  M_t = D_t M_{t-1} + I_t \qquad (N, S, P) = (N, S, S) @ (N, S, P) + (N, S, P)

with ``D_t`` and ``I_t`` the Jacobians of the core's own single step (the compiled products
kernel's S basis tangents and cotangents, or autograd's pullback of the S basis cotangents, see :mod:`.online`). The gradient of the loss at step t is ``∂L_t/∂s_t · M_t``: exact, for
every cell and any number of layers, with no stored history. Cost per step: the batched
matrix product, 2·N·S²·P flops (for an Elman network S = n, P ≈ n², so n⁴), and N·S·P
memory (n³) — why the approximations (UORO, SnAp) exist.
"""
from __future__ import annotations

from typing import Any, Dict

import torch
from torch import Tensor

from .base import COTANGENT, FORWARD, register
from .online import OnlineAlgorithm, Sensitivity, StepFunction


def dense_influence_cost(S: int) -> float:
    """Forward-step equivalents of an exact step of a dense influence: the forward, S
    cotangents for D and I, and D·M's S·S·P multiply-adds, S² forward steps (a step of the
    core is about P multiply-adds, one per recurrent parameter): (S + 1)² with the forward."""
    return FORWARD + COTANGENT * S + S * S


class RTRLSensitivity(Sensitivity):
    """Dense influence ``M`` (N, S, P), advanced exactly.

    Two preallocated buffers take turns: the step writes ``I_t`` into the spare one and
    adds ``D_t M_{t-1}`` to it in place (``baddbmm_``: one GEMM accumulating into its
    output), so a step allocates no N·S·P tensor and copies nothing but I once.
    """

    M: Tensor

    @property
    def cost(self) -> float:
        return dense_influence_cost(self.fn.S)

    def reset(self, batch: int, like: Tensor) -> None:
        self.M = like.new_zeros(batch, self.fn.S, self.fn.P)
        self._spare = torch.empty_like(self.M)

    def advance(self, theta: Tensor, s: Tensor, x: Tensor) -> Tensor:
        nxt = self._spare if self._spare.shape == self.M.shape else torch.empty_like(self.M)
        s_next, D, I = self.fn.jacobians(theta, s, x, out=nxt)  # (N, S), (N, S, S), I in nxt
        I.baddbmm_(D, self.M)  # M_t = D M_{t-1} + I: the one matrix product of RTRL
        self._spare, self.M = self.M, I
        return s_next

    def gradient(self, c: Tensor) -> Tensor:
        return torch.bmm(c[:, None, :], self.M)[:, 0]  # (N, P)

    def state_dict(self) -> Dict[str, Any]:
        M = getattr(self, "M", None)
        return {"M": None if M is None else M.clone()}  # M's buffer is overwritten two steps on

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        if state["M"] is not None:
            self.M = state["M"].clone()
            self._spare = torch.empty_like(self.M)


@register
class RTRL(OnlineAlgorithm):
    """Exact real-time recurrent learning; see the module docstring."""

    name = "rtrl"
    # its cost per step grows as n⁴: on the default task one epoch takes 13 s at the seed's 64
    # units and 1.5 s at 32 (15 s and 2 s before the kernel's Jacobians); 32 units after 10
    # epochs forecast at validation MASE 1.44 where 64 units reach 2.9 after 4 epochs
    SUGGESTED = {"model": {"hidden": 32}}

    def make_sensitivity(self, fn: StepFunction) -> Sensitivity:
        return RTRLSensitivity(fn)

r"""Unbiased Online Recurrent Optimization (Tallec & Ollivier 2017, "Unbiased Online
Recurrent Optimization", ICLR 2018, arXiv:1702.05043, Algorithm 1).

UORO keeps a rank-one estimate ``M_t ≈ s̃_t θ̃_tᵀ`` per stream, unbiased:
``E[s̃_t θ̃_tᵀ] = M_t``. With random signs ν (N, S) drawn fresh at every step,

.. math::
    \tilde s_t = \rho_0 D_t \tilde s_{t-1} + \rho_1 \nu, \qquad
    \tilde\theta_t = \tilde\theta_{t-1}/\rho_0 + (\nu^\top I_t)/\rho_1,

    \rho_0 = \sqrt{\frac{\|\tilde\theta_{t-1}\| + \epsilon}{\|D_t \tilde s_{t-1}\| + \epsilon}},\qquad
    \rho_1 = \sqrt{\frac{\|\nu^\top I_t\| + \epsilon}{\|\nu\| + \epsilon}}

(the variance-reduction scalars that balance the two factors, sec. 4 of the paper). The
gradient estimate is ``(∂L_t/∂s_t · s̃_t) θ̃_t``. ``D s̃`` is a forward-mode product and
``νᵀ I`` a reverse-mode one, both from one forward and two backward passes
(``StepFunction.products``), so a step costs a few forward steps: O(n²) time and O(n²) memory for an Elman network, like BPTT per step.
The signs come from the run's generator, so runs and resumes repeat bit for bit.
"""
from __future__ import annotations

from typing import Any, Dict

import torch
from torch import Tensor

from .base import COTANGENT, FORWARD, TANGENT, register
from .online import OnlineAlgorithm, Sensitivity, StepFunction

EPS = 1e-7  # the paper's stabilisers of rho_0 and rho_1


class UOROSensitivity(Sensitivity):
    """Rank-one factors s̃ (N, S) and θ̃ (N, P) of every stream."""

    s_tilde: Tensor
    theta_tilde: Tensor
    cost = FORWARD + TANGENT + COTANGENT  # one jvp along s̃ and one vjp along ν per step

    def reset(self, batch: int, like: Tensor) -> None:
        self.s_tilde = like.new_zeros(batch, self.fn.S)
        self.theta_tilde = like.new_zeros(batch, self.fn.P)

    def advance(self, theta: Tensor, s: Tensor, x: Tensor) -> Tensor:
        nu = torch.randint(0, 2, s.shape, generator=self.generator, dtype=s.dtype, device=s.device) * 2 - 1  # (N, S) ±1
        s_next, nuI, Ds = self.fn.products(theta, s, x, nu[:, None], self.s_tilde[:, None])
        nuI, Ds = nuI[:, 0], Ds[:, 0]  # (N, P), (N, S)
        norm = lambda v: torch.linalg.vector_norm(v, dim=1, keepdim=True)  # (N, 1)
        rho0 = torch.sqrt((norm(self.theta_tilde) + EPS) / (norm(Ds) + EPS))
        rho1 = torch.sqrt((norm(nuI) + EPS) / (self.fn.S ** 0.5 + EPS))  # |nu| = sqrt(S): every entry ±1
        self.s_tilde = torch.addcmul(rho0 * Ds, rho1, nu)
        self.theta_tilde = torch.addcdiv(self.theta_tilde / rho0, nuI, rho1)
        return s_next

    def gradient(self, c: Tensor) -> Tensor:
        return (c * self.s_tilde).sum(1, keepdim=True) * self.theta_tilde  # (N, P)

    def state_dict(self) -> Dict[str, Any]:
        return {"s_tilde": getattr(self, "s_tilde", None), "theta_tilde": getattr(self, "theta_tilde", None)}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        if state["s_tilde"] is not None:
            self.s_tilde, self.theta_tilde = state["s_tilde"], state["theta_tilde"]


@register
class UORO(OnlineAlgorithm):
    """Unbiased online recurrent optimization; see the module docstring."""

    name = "uoro"

    def make_sensitivity(self, fn: StepFunction) -> Sensitivity:
        return UOROSensitivity(fn, self.ctx.generator)

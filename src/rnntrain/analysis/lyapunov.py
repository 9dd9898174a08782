r"""Lyapunov spectrum along a trajectory by the QR method (Benettin et al. 1980).

For the map :math:`h_{t} = F(h_{t-1}, x_t)` with Jacobians :math:`J_t`, carry an
orthonormal frame :math:`Q_0 = I` (first ``k`` columns) and at every step

.. math::
    J_t Q_{t-1} = Q_t R_t, \qquad
    \lambda_i \approx \frac{1}{T} \sum_{t=1}^{T} \ln |(R_t)_{ii}|,

so :math:`\lambda_1 \ge \lambda_2 \ge \dots` are the mean exponential growth rates per
step of k-dimensional volumes (nats per step). Every :math:`J_t` comes straight from
the step by ``vmap(jacrev(step))``, batched over chunks of time steps. A negative
largest exponent means nearby trajectories converge (point attractor or stable cycle);
a positive one is chaos (Sompolinsky, Crisanti & Sommers 1988); zero is a neutral
direction (a cycle's phase, quasi-periodic motion).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import Tensor
from .step import StepFn, step_jacobians


@dataclass
class LyapunovSpectrum:
    exponents: Tensor  # (k,) per step, descending
    running_max: Tensor  # (T,) running estimate of the largest exponent after each step
    final_state: Tensor  # (D,) where the trajectory ended

    @property
    def largest(self) -> float:
        return float(self.exponents[0])


@torch.no_grad()  # jacrev ignores an outer no_grad; no graph through the model's weights
def lyapunov_spectrum(step: StepFn, h0: Tensor, x: Tensor, steps: int = 1000, *,
                      transient: int = 100, k: Optional[int] = None,
                      xs: Optional[Tensor] = None, chunk: int = 128) -> LyapunovSpectrum:
    """The ``k`` largest Lyapunov exponents (all D by default) along the trajectory from h0.

    h0 (D,); x (I,) a constant input, or ``xs`` (transient + steps, I) a driving sequence.
    ``transient`` steps are run first (and not counted) so the estimate is of the attractor.
    The trajectory is run ``chunk`` steps at a time, then the Jacobians of those steps come
    from one ``vmap(jacrev(step))`` call over time (the per-call overhead of the transform
    is paid once per chunk), then the QR recursion runs over them. Computed in float64.
    """
    h = h0.detach().double()
    D = h.numel()
    k = D if k is None else min(k, D)
    total = transient + steps
    if xs is None:
        xs = x.detach().reshape(1, -1).expand(total, x.numel())
    xs = xs.double()
    f = _double(step, h0.dtype)
    for t in range(transient):
        h = f(h, xs[t])
    Q = torch.eye(D, k, dtype=torch.float64)
    sums = torch.zeros(k, dtype=torch.float64)
    running = torch.empty(steps, dtype=torch.float64)
    for c in range(0, steps, chunk):
        u = xs[transient + c:transient + min(c + chunk, steps)]  # (C, I)
        visited = []
        for t in range(len(u)):
            visited.append(h)
            h = f(h, u[t])
        jac = step_jacobians(f, torch.stack(visited), u)  # (C, D, D): J_t at (h_{t-1}, x_t)
        for t in range(len(u)):
            Q, R = torch.linalg.qr(jac[t] @ Q)
            sums += torch.log(torch.clamp(R.diagonal().abs(), min=1e-300))
            running[c + t] = sums[0]  # column 1 follows the most expanding direction
    running /= torch.arange(1, steps + 1, dtype=torch.float64)
    exponents, _ = torch.sort(sums / steps, descending=True)
    return LyapunovSpectrum(exponents, running, h.to(h0.dtype))


def largest_lyapunov(step: StepFn, h0: Tensor, x: Tensor, steps: int = 1000,
                     transient: int = 100) -> float:
    """The largest exponent alone (a one-column frame: cheap for big networks)."""
    return lyapunov_spectrum(step, h0, x, steps, transient=transient, k=1).largest


def _double(step: StepFn, dtype):
    """The step in float64 (a model's parameters stay in their dtype: cast around it)."""
    if dtype == torch.float64:
        return step

    def f(h, x):
        return step(h.to(dtype), x.to(dtype)).double()

    # Models in float32: the Jacobian product is taken in float32 and accumulated in float64.
    return f


r"""Lyapunov spectrum along a trajectory by the QR method (Benettin et al. 1980).

For the map :math:`h_{t} = F(h_{t-1}, x_t)` with Jacobians :math:`J_t`, carry an
orthonormal frame :math:`Q_0 = I` (first ``k`` columns), propagate it
:math:`Y \leftarrow J_t Y` and re-orthonormalise every ``m`` steps,

.. math::
    J_{t} \cdots J_{t-m+1} Q_{t-m} = Q_t R_t, \qquad
    \lambda_i \approx \frac{1}{T} \sum_{\text{QRs}} \ln |(R_t)_{ii}|,

which telescopes to the same sums as a QR at every step (Geist, Parlitz & Lauterborn 1990,
"Comparison of different methods for computing Lyapunov exponents", Prog. Theor. Phys. 83,
sec. 3: the frame need only be re-orthonormalised before its columns lose independence).
So :math:`\lambda_1 \ge \lambda_2 \ge \dots` are the mean exponential growth rates per
step of k-dimensional volumes (nats per step). Every :math:`J_t` comes straight from
the step (``step_jacobians``), batched over chunks of time steps. A negative
largest exponent means nearby trajectories converge (point attractor or stable cycle);
a positive one is chaos (Sompolinsky, Crisanti & Sommers 1988); zero is a neutral
direction (a cycle's phase, quasi-periodic motion).

Choosing ``m``: between QRs the columns of Y stretch by about :math:`e^{\lambda_i m}`, so
their condition number grows like :math:`e^{(\lambda_1 - \lambda_k) m}` and the smallest
:math:`R_{ii}` keep about :math:`16 - \log_{10}\kappa` digits. By default ``m`` adapts: after
each QR it is set so that the largest spread of :math:`\ln|R_{ii}|` per step seen so far, times
``m``, stays within :math:`\ln 10^{8}` (eight digits kept), and the largest
:math:`|\ln R_{ii}|` per step times ``m`` within :math:`\ln 10^{100}` (no overflow or
underflow of the frame); the first QR follows the first step.
"""
from __future__ import annotations

import math
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


# Re-orthonormalisation budget (see the module docstring): spread of the frame's column
# growths, and the growth of any column, both in nats, between two QRs; longest interval.
_SPREAD_BUDGET = math.log(1e8)
_RANGE_BUDGET = math.log(1e100)
_MAX_INTERVAL = 100


@torch.no_grad()
def lyapunov_spectrum(step: StepFn, h0: Tensor, x: Tensor, steps: int = 1000, *,
                      transient: int = 100, k: Optional[int] = None,
                      xs: Optional[Tensor] = None, chunk: int = 16,
                      reorthonormalize: Optional[int] = None) -> LyapunovSpectrum:
    """The ``k`` largest Lyapunov exponents (all D by default) along the trajectory from h0.

    h0 (D,); x (I,) a constant input, or ``xs`` (transient + steps, I) a driving sequence.
    ``transient`` steps are run first (and not counted) so the estimate is of the attractor.
    The trajectory is run ``chunk`` steps at a time, then the Jacobians of those steps come
    from one batched call over time (:func:`.step.batched_jacobians`: its per-call overhead
    is paid once per chunk), then the frame is propagated through them. It is
    re-orthonormalised (QR) every ``reorthonormalize`` steps, or, by default (None), at
    intervals adapted to the stretching observed (module docstring). Computed in float64.
    """
    h = h0.detach().double()
    D = h.numel()
    k = D if k is None else min(k, D)
    if reorthonormalize is not None and reorthonormalize < 1:
        raise ValueError(f"reorthonormalize must be a number of steps >= 1 (or None), got {reorthonormalize!r}")
    total = transient + steps
    if xs is None:
        xs = x.detach().reshape(1, -1).expand(total, x.numel())
    xs = xs.double()
    f = _double(step, h0.dtype)
    for t in range(transient):
        h = f(h, xs[t])
    Y = torch.eye(D, k, dtype=torch.float64)  # the frame, orthonormal after every QR
    sums = torch.zeros(k, dtype=torch.float64)  # sum of ln|R_ii| over the QRs so far
    running = torch.empty(steps, dtype=torch.float64)
    interval, since = reorthonormalize or 1, 0  # steps between QRs; steps since the last
    spread = reach = 0.0  # largest spread of ln|R_ii| per step, and largest |ln R_ii| per step
    for c in range(0, steps, chunk):
        u = xs[transient + c:transient + min(c + chunk, steps)]  # (C, I)
        visited = []
        for t in range(len(u)):
            visited.append(h)
            h = f(h, u[t])
        jac = step_jacobians(f, torch.stack(visited), u)  # (C, D, D): J_t at (h_{t-1}, x_t)
        for t in range(len(u)):
            Y = jac[t] @ Y  # (D, k)
            since += 1
            if since < interval and c + t < steps - 1:
                # column 1 is Gram-Schmidt's first: its norm is the R_11 of a QR now
                running[c + t] = sums[0] + torch.log(torch.clamp(Y[:, 0].norm(), min=1e-300))
                continue
            Y, R = torch.linalg.qr(Y)
            logs = torch.log(torch.clamp(R.diagonal().abs(), min=1e-300))  # (k,)
            sums += logs
            running[c + t] = sums[0]
            if reorthonormalize is None:  # the worst stretching per step seen so far
                spread = max(spread, float(logs.max() - logs.min()) / since)
                reach = max(reach, float(logs.abs().max()) / since)
                interval = max(1, min(_MAX_INTERVAL, int(_SPREAD_BUDGET / max(spread, 1e-300)),
                                      int(_RANGE_BUDGET / max(reach, 1e-300))))
            since = 0
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


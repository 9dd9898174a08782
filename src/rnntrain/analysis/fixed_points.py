r"""Fixed points and slow points of a step function (Sussillo & Barak 2013).

For a constant input u, minimise the speed

.. math::
    q(h) = \tfrac12 \lVert F(h, u) - h \rVert^2

from many starting states (typically states the network visits). Minima with q = 0 are
fixed points; local minima with small q > 0 are *slow points*, where the dynamics
linger (Sussillo & Barak 2013, sec. 2). Each start is minimised by Levenberg-Marquardt
on the residual r(h) = F(h, u) - h, whose Jacobian J - I comes from the vmapped step
(``batched_jacobians``); all starts run as one batch. The candidates are de-duplicated
and each is classified by the eigenvalues μ of its Jacobian J = ∂F/∂h (a discrete-time
map: |μ| < 1 contracts):

- ``stable``: every |μ| < 1 - eps;        ``unstable``: every |μ| > 1 + eps;
- ``saddle``: some above 1 + eps, some below 1 - eps;
- ``marginal``: otherwise (an eigenvalue on the unit circle within eps, e.g. a rotation).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional

import torch
from torch import Tensor
from torch.func import vmap

from .step import StepFn, batched_jacobians


@dataclass
class FixedPoint:
    state: Tensor  # (D,)
    q: float  # ½‖F(h) - h‖² at the point
    eigenvalues: Tensor  # (D,) complex, by decreasing modulus
    kind: str  # stable | saddle | unstable | marginal
    fixed: bool  # q below the fixed-point tolerance (else a slow point)

    @property
    def spectral_radius(self) -> float:
        return float(self.eigenvalues.abs().max())

    def summary(self) -> Dict:
        return {"kind": self.kind, "fixed": self.fixed, "q": self.q,
                "spectral_radius": self.spectral_radius,
                "unstable_dimensions": int((self.eigenvalues.abs() > 1).sum()),
                "eigenvalues_top": [[float(z.real), float(z.imag)] for z in self.eigenvalues[:10]]}


def classify(eigenvalues: Tensor, eps: float = 1e-3) -> str:
    """Stability of a fixed point of a map from its Jacobian's eigenvalues (see module)."""
    m = eigenvalues.abs()
    above, below = bool((m > 1 + eps).any()), bool((m < 1 - eps).any())
    if above and below:
        return "saddle"
    if bool((m < 1 - eps).all()):
        return "stable"
    if bool((m > 1 + eps).all()):
        return "unstable"
    return "saddle" if above else "marginal"


@torch.no_grad()
def minimise_speed(step: StepFn, x: Tensor, starts: Tensor, iterations: int = 200,
                   tol: Optional[float] = None) -> tuple:
    """Levenberg-Marquardt on r(h) = F(h, x) - h for every start (B, D), in float64.

    Returns (h (B, D), q (B,)). Each start keeps its own damping λ: a step that lowers q
    is taken and λ shrinks; otherwise λ grows (towards a small gradient step). A start
    stops when q <= tol (default: the step's rounding floor, (eps · 10)² · D) or when λ
    exceeds 1e8 (no step lowers q any more: a local minimum, possibly a slow point)."""
    dtype = starts.dtype
    if tol is None:
        tol = (torch.finfo(dtype).eps * 10) ** 2 * starts.shape[-1]
    f = (lambda h, u: step(h.to(dtype), u.to(dtype)).double()) if dtype != torch.float64 else step
    x = x.double()
    h = starts.detach().double().clone()
    B, D = h.shape
    eye = torch.eye(D, dtype=torch.float64)
    F_b = vmap(f, in_dims=(0, None))
    with torch.no_grad():
        r = F_b(h, x) - h
    q = 0.5 * (r * r).sum(-1)
    lam = torch.full((B,), 1e-2, dtype=torch.float64)
    for _ in range(iterations):
        active = (q > tol) & (lam < 1e8)
        if not bool(active.any()):
            break
        A = batched_jacobians(F_b, h, x) - eye  # (B, D, D)
        g = (A.transpose(1, 2) @ r.unsqueeze(-1)).squeeze(-1)  # (B, D)
        H = A.transpose(1, 2) @ A
        diag = H.diagonal(dim1=1, dim2=2).clamp(min=1e-12)
        delta = -torch.linalg.solve(H + lam[:, None, None] * torch.diag_embed(diag), g)
        with torch.no_grad():
            h_new = h + delta
            r_new = F_b(h_new, x) - h_new
        q_new = 0.5 * (r_new * r_new).sum(-1)
        better = (q_new < q) & active & torch.isfinite(q_new)
        h = torch.where(better[:, None], h_new, h)
        r = torch.where(better[:, None], r_new, r)
        q = torch.where(better, q_new, q)
        lam = torch.where(better, lam / 3, torch.clamp(lam * 3, max=1e12))
    return h, q


@torch.no_grad()
def find_fixed_points(step: StepFn, x: Tensor, starts: Tensor, *, iterations: int = 200,
                      fixed_tol: float = 1e-10, slow_tol: float = 1e-4, unique_tol: float = 1e-3,
                      eps: float = 1e-3) -> List[FixedPoint]:
    """Fixed and slow points of ``h -> step(h, x)`` reached from ``starts`` (B, D).

    Candidates with q above ``slow_tol`` are dropped; two candidates closer than
    ``unique_tol * (1 + ‖h‖)`` are one point (the lower q is kept). Sorted by q.
    """
    h, q = minimise_speed(step, x, starts, iterations)
    order = torch.argsort(q)
    kept: List[int] = []
    for i in order.tolist():
        if not q[i] <= slow_tol:
            continue
        if all(float((h[i] - h[j]).norm()) > unique_tol * (1 + float(h[j].norm())) for j in kept):
            kept.append(i)
    if not kept:
        return []
    dtype = starts.dtype
    f = (lambda s, u: step(s.to(dtype), u.to(dtype)).double()) if dtype != torch.float64 else step
    jac = batched_jacobians(vmap(f, in_dims=(0, None)), h[kept], x.double())  # (P, D, D)
    points = []
    for n, i in enumerate(kept):
        ev = torch.linalg.eigvals(jac[n])
        ev = ev[torch.argsort(ev.abs(), descending=True)]
        points.append(FixedPoint(h[i].to(dtype), float(q[i]), ev, classify(ev, eps),
                                 bool(q[i] <= fixed_tol)))
    return points

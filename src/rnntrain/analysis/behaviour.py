r"""What an autonomous (or constantly driven) network does in the long run.

The reference's three behaviours of a trained recurrent network, plus quasi-periodic
motion, told apart from the trajectory of ``h_t = F(h_{t-1}, u)`` after a transient:

- ``point attractor``: the state stops moving, max_t ‖h_{t+1} - h_t‖ <= tol · (1 + scale);
- ``periodic`` with period p: the smallest p <= max_period with
  max_t ‖h_{t+p} - h_t‖ <= tol · (1 + scale) (a cycle of the map);
- ``chaotic``: no repetition and a largest Lyapunov exponent above ``chaos_threshold``
  (nearby trajectories separate exponentially);
- ``quasi-periodic``: no repetition and a largest exponent within ±``chaos_threshold``
  of zero (motion on a torus: a neutral direction, nothing grows);
- ``unresolved``: none of these (a very slow transient or a cycle longer than
  max_period): rerun with more ``transient`` steps or a larger ``max_period``.

``scale`` is the RMS distance of the recorded states from their mean (so tolerances
are relative to the size of the attractor) and the trajectory runs in float64.

A state that stops moving while its largest Lyapunov exponent is above ``chaos_threshold``
sits on an *unstable* fixed point (the zero state of a reservoir with spectral radius
above 1, say), reached only because the trajectory started exactly on it. That is no
attractor: the state is nudged off it (a seeded perturbation of relative size 1e-6) and
followed again, so the kind reported agrees with the exponent reported beside it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional

import torch
from torch import Tensor

from .lyapunov import lyapunov_spectrum
from .step import StepFn


@dataclass
class Behaviour:
    kind: str  # point attractor | periodic | quasi-periodic | chaotic | unresolved
    period: Optional[int]  # steps per cycle, for "periodic"
    largest_lyapunov: float  # per step
    trajectory: Tensor  # (W, D) the recorded states after the transient
    drift: float  # max ‖h_{t+1} - h_t‖ over the recorded window

    def summary(self) -> Dict:
        return {"kind": self.kind, "period": self.period,
                "largest_lyapunov": self.largest_lyapunov, "drift": self.drift}


@torch.no_grad()
def classify_behaviour(step: StepFn, h0: Tensor, x: Tensor, *, transient: int = 1000,
                       window: int = 500, max_period: int = 200, tol: float = 1e-5,
                       chaos_threshold: float = 1e-2, lyapunov_steps: int = 1000) -> Behaviour:
    """Classify the long-run behaviour from h0 (D,) under the constant input x (I,)."""
    dtype = h0.dtype
    f = (lambda h, u: step(h.to(dtype), u.to(dtype)).double()) if dtype != torch.float64 else step
    u = x.double()
    h = h0.detach().double()
    for attempt in range(2):
        for _ in range(transient):
            h = f(h, u)
        states = [h]
        for _ in range(window):
            h = f(h, u)
            states.append(h)
        traj = torch.stack(states)  # (W+1, D)
        scale = float((traj - traj.mean(0)).pow(2).sum(-1).mean().sqrt())
        bound = tol * (1 + scale)
        drift = float((traj[1:] - traj[:-1]).norm(dim=-1).max())
        lyap = lyapunov_spectrum(step, traj[-1].to(dtype), x, lyapunov_steps, transient=0, k=1).largest
        if not (drift <= bound and lyap > chaos_threshold):
            break
        # resting on an unstable fixed point: nudge the state off it and follow it again
        nudge = torch.randn(h.shape, generator=torch.Generator().manual_seed(attempt), dtype=torch.float64)
        h = h + 1e-6 * (1 + float(h.norm())) * nudge / float(nudge.norm())
    kind, period = "unresolved", None
    if drift <= bound:
        kind = "point attractor"
    else:
        for p in range(2, min(max_period, window // 2) + 1):
            if float((traj[p:] - traj[:-p]).norm(dim=-1).max()) <= bound:
                kind, period = "periodic", p
                break
        else:
            if lyap > chaos_threshold:
                kind = "chaotic"
            elif lyap >= -chaos_threshold:
                kind = "quasi-periodic"
    return Behaviour(kind, period, lyap, traj.to(dtype), drift)

r"""Particle swarm optimisation over the weight vector (Kennedy & Eberhart 1995).

Each particle i has a position x_i (a weight vector), a velocity v_i and its own best
position p_i; g_i is the best of its neighbourhood (the whole swarm for ``global``, the
particles within ``neighbors`` places on a ring for ``ring``, Kennedy & Mendes 2002)::

    inertia:       v <- w v + c1 r1 (p - x) + c2 r2 (g - x)
    constriction:  v <- chi (v + c1 r1 (p - x) + c2 r2 (g - x)),
                   chi = 2 / |2 - phi - sqrt(phi^2 - 4 phi)|,  phi = c1 + c2 > 4
                   (Clerc & Kennedy 2002)
    v <- clamp(v, -velocity_clamp, velocity_clamp);   x <- x + v

with r1, r2 ~ U(0, 1) per gene. Defaults (w = 0.7298, c1 = c2 = 1.49618) are the
inertia form of Clerc's constriction with c = 2.05.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Dict

import torch
from torch import Tensor

from ...config.schema import check
from ..base import register
from .base import PopulationAlgorithm, PopulationOptions


@dataclass(frozen=True)
class PSOOptions(PopulationOptions):
    topology: str = "global"  # global (gbest) | ring (lbest)
    neighbors: int = 1  # ring: particles on each side in a neighbourhood
    coefficients: str = "inertia"  # inertia (w) | constriction (chi from c1 + c2 > 4)
    inertia: float = 0.7298  # w, the inertia weight
    cognitive: float = 1.49618  # c1, pull towards the particle's own best
    social: float = 1.49618  # c2, pull towards the neighbourhood's best
    velocity_clamp: float = 0.2  # largest |v| per gene (0 = no clamping)

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.topology in ("global", "ring"), f"unknown topology '{self.topology}': choose global or ring")
        check(self.coefficients in ("inertia", "constriction"),
              f"unknown coefficients '{self.coefficients}': choose inertia or constriction")
        check(self.neighbors >= 1, f"neighbors must be >= 1, got {self.neighbors}")
        check(self.cognitive >= 0 and self.social >= 0, "cognitive and social must be >= 0")
        check(self.coefficients == "inertia" or self.cognitive + self.social > 4,
              f"constriction needs cognitive + social > 4 (e.g. 2.05 each), got "
              f"{self.cognitive + self.social:g}")
        check(self.velocity_clamp >= 0, f"velocity_clamp must be >= 0 (0 = off), got {self.velocity_clamp}")


@register
class ParticleSwarm(PopulationAlgorithm):
    """Particle swarm optimisation; see the module docstring."""

    name = "pso"
    label = "PSO"
    Options = PSOOptions

    def __init__(self, ctx, options: PSOOptions) -> None:
        super().__init__(ctx, options)
        self.x = self.initial_population()  # (P, D) positions
        self.v = torch.zeros_like(self.x)  # (P, D) velocities
        self.p = self.x.clone()  # (P, D) personal bests
        self.p_loss = torch.empty(0, dtype=torch.float64)  # (P,) once evaluated

    def attractors(self) -> Tensor:
        """(P, D): the best personal best in each particle's neighbourhood."""
        P = len(self.p)
        if self.options.topology == "global":
            return self.p[int(self.p_loss.argmin())].expand(P, -1)
        k = self.options.neighbors
        hood = (torch.arange(P)[:, None] + torch.arange(-k, k + 1)) % P  # (P, 2k+1)
        best = hood.gather(1, self.p_loss[hood].argmin(1, keepdim=True)).squeeze(1)
        return self.p[best]

    def generation(self) -> Dict[str, float]:
        o, g = self.options, self.ctx.generator
        if len(self.p_loss) == 0:
            self.p_loss = self.evaluate(self.x)
        P, D = self.x.shape
        r1 = torch.rand(P, D, generator=g, dtype=self.dtype)
        r2 = torch.rand(P, D, generator=g, dtype=self.dtype)
        pull = o.cognitive * r1 * (self.p - self.x) + o.social * r2 * (self.attractors() - self.x)
        if o.coefficients == "inertia":
            self.v = o.inertia * self.v + pull
        else:
            phi = o.cognitive + o.social
            chi = 2.0 / abs(2.0 - phi - math.sqrt(phi * phi - 4.0 * phi))
            self.v = chi * (self.v + pull)
        if o.velocity_clamp > 0:
            self.v = self.v.clamp(-o.velocity_clamp, o.velocity_clamp)
        self.x = self.x + self.v
        losses = self.evaluate(self.x)
        improved = losses < self.p_loss
        self.p = torch.where(improved[:, None], self.x, self.p)
        self.p_loss = torch.where(improved, losses, self.p_loss)
        return {"speed": float(self.v.double().norm(dim=1).mean())}

    def search_state(self) -> Dict[str, Any]:
        return {"x": self.x.clone(), "v": self.v.clone(), "p": self.p.clone(), "p_loss": self.p_loss.clone()}

    def load_search_state(self, state: Dict[str, Any]) -> None:
        self.x, self.v = state["x"].clone(), state["v"].clone()
        self.p, self.p_loss = state["p"].clone(), state["p_loss"].clone()

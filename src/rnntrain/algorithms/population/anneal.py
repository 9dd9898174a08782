r"""Simulated annealing with many chains run together as one batch (Kirkpatrick et al. 1983).

Each of the P chains holds a weight vector x, its loss f and a temperature T. Every
generation each chain proposes, and all P proposals are evaluated in one batch::

    x' = x + step * sqrt(T / T0) * N(0, I)         Gaussian proposal scaled by temperature
    accept with probability min(1, exp(-(f(x') - f(x)) / T))        (Metropolis)

Both schedules cool T <- cooling * T every generation. ``geometric`` shrinks the proposal
with the temperature, as above. ``adaptive`` instead gives every chain its own step s and
steers the chain's running acceptance rate a (exponential average) towards
``target_acceptance`` (Corana, Marchesi, Martini & Ridella 1987, who adapt the step so about
half the moves pass)::

    x' = x + s * N(0, I);   s <- s * exp(adapt_rate * (a - target_acceptance))

so a chain whose proposals all fail (too large a step for this many weights) takes smaller
ones until some pass. (Steering T from the acceptance rate instead, with the step tied to T,
is a runaway: few acceptances raise T, which enlarges the step, which lowers acceptance.)
T0 = ``temperature``, or when 0 a hundredth of the initial chains' median loss: a move that
worsens the loss by 1% of its level passes with probability 1/e at first. (The spread of the
initial losses, used before, is set by the worst random chains; on the default 4353-weight
model it let every chain random-walk, and 40 generations never improved on the first.)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict

import torch

from ...config.schema import check
from ..base import register
from .base import PopulationAlgorithm, PopulationOptions, spread


@dataclass(frozen=True)
class AnnealOptions(PopulationOptions):
    schedule: str = "geometric"  # geometric | adaptive
    temperature: float = 0.0  # T0; 0: a hundredth of the initial chains' median loss
    cooling: float = 0.95  # geometric: T <- cooling * T each generation
    step: float = 0.2  # proposal standard deviation at T = T0 (adaptive: each chain's first step)
    target_acceptance: float = 0.3  # adaptive: acceptance rate each chain's step steers to
    adapt_rate: float = 0.5  # adaptive: how fast the step follows the acceptance rate

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.schedule in ("geometric", "adaptive"),
              f"unknown schedule '{self.schedule}': choose geometric or adaptive")
        check(self.temperature >= 0, f"temperature must be >= 0 (0 = automatic), got {self.temperature}")
        check(0 < self.cooling <= 1, f"cooling must be in (0, 1], got {self.cooling}")
        check(self.step > 0, f"step must be > 0, got {self.step}")
        check(0 < self.target_acceptance < 1, f"target_acceptance must be in (0, 1), got {self.target_acceptance}")
        check(self.adapt_rate > 0, f"adapt_rate must be > 0, got {self.adapt_rate}")


@register
class SimulatedAnnealing(PopulationAlgorithm):
    """P simulated-annealing chains in one batch; see the module docstring."""

    name = "anneal"
    label = "annealing"
    Options = AnnealOptions

    def __init__(self, ctx, options: AnnealOptions) -> None:
        super().__init__(ctx, options)
        self.x = self.initial_population()  # (P, D) chain states
        self.f = torch.empty(0, dtype=torch.float64)  # (P,) their losses
        self.T = torch.empty(0, dtype=torch.float64)  # (P,) temperatures
        self.T0 = 0.0
        self.rate = torch.full((options.population,), options.target_acceptance, dtype=torch.float64)
        self.steps = torch.full((options.population,), options.step, dtype=torch.float64)  # adaptive: (P,)
        self.accepted = 0  # proposals accepted so far (all chains)

    def generation(self) -> Dict[str, float]:
        o, g = self.options, self.ctx.generator
        P, D = self.x.shape
        if len(self.f) == 0:
            self.f = self.evaluate(self.x)
            finite = self.f[torch.isfinite(self.f)]
            self.T0 = o.temperature or max(0.01 * float(finite.median()) if len(finite) else 1.0, 1e-12)
            self.T = torch.full((P,), self.T0, dtype=torch.float64)
        step = self.steps if o.schedule == "adaptive" else o.step * (self.T / self.T0).sqrt()  # (P,)
        proposal = self.x + step.to(self.dtype)[:, None] * torch.randn(P, D, generator=g, dtype=self.dtype)
        f_new = self.evaluate(proposal, diversity=False)
        u = torch.rand(P, generator=g, dtype=torch.float64)
        delta = f_new - self.f
        accept = (delta <= 0) | (u < torch.exp(-delta / self.T.clamp_min(1e-300)))
        accept &= torch.isfinite(f_new)
        self.x = torch.where(accept[:, None], proposal, self.x)
        self.f = torch.where(accept, f_new, self.f)
        self.accepted += int(accept.sum())
        self.T = self.T * o.cooling
        if o.schedule == "adaptive":
            self.rate = 0.9 * self.rate + 0.1 * accept.double()
            self.steps = self.steps * torch.exp(o.adapt_rate * (self.rate - o.target_acceptance))
        self.last_losses = self.f
        self.diversity = spread(self.x)
        return {"acceptance_rate": float(accept.double().mean()),
                "acceptance_total": self.accepted / max(self.generation_count + 1, 1) / P,
                "temperature": float(self.T.mean()), "step": float(step.mean())}

    def search_state(self) -> Dict[str, Any]:
        return {"x": self.x.clone(), "f": self.f.clone(), "T": self.T.clone(), "T0": self.T0,
                "rate": self.rate.clone(), "steps": self.steps.clone(), "accepted": self.accepted}

    def load_search_state(self, state: Dict[str, Any]) -> None:
        self.x, self.f, self.T = state["x"].clone(), state["f"].clone(), state["T"].clone()
        self.T0, self.rate, self.accepted = float(state["T0"]), state["rate"].clone(), int(state["accepted"])
        self.steps = state.get("steps", self.steps).clone()

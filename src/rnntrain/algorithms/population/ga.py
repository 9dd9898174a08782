r"""Genetic algorithm over the weight vector (the recipe of docs/global-search.md).

One chromosome = one network, one gene = one weight. Each generation::

    fitness_i = 1 / (loss_i + epsilon)                      (reciprocal of the MSE)
    parents   = selection(fitness)                          tournament | roulette | rank
    children  = crossover(parent_a, parent_b)               uniform | one-point | blend (BLX-alpha)
    children += mask * mutation_scale * N(0, 1),  mask ~ Bernoulli(mutation_rate) per gene
    next      = elite best individuals  +  children         (elites are not re-evaluated)

Blend crossover is Eshelman & Schaffer's BLX-alpha (1993): each gene uniform in
[min - alpha d, max + alpha d], d = |a - b|. All draws come from the run's generator.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict

import torch
from torch import Tensor

from ...config.schema import check
from ..base import register
from .base import PopulationAlgorithm, PopulationOptions, spread

SELECTIONS = ("tournament", "roulette", "rank")
CROSSOVERS = ("uniform", "one-point", "blend")


@dataclass(frozen=True)
class GAOptions(PopulationOptions):
    selection: str = "tournament"  # tournament | roulette (fitness-proportional) | rank
    tournament_size: int = 3  # contestants per tournament
    crossover: str = "uniform"  # uniform | one-point | blend (BLX-alpha)
    crossover_rate: float = 0.9  # probability a child is a crossover (else a copy of parent a)
    blend_alpha: float = 0.5  # BLX-alpha's extension of the parents' interval
    mutation_rate: float = 0.1  # probability that a gene mutates
    mutation_scale: float = 0.05  # standard deviation of a gene's Gaussian mutation
    elite: int = 2  # best individuals copied unchanged into the next generation

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.selection in SELECTIONS, f"unknown selection '{self.selection}': choose "
              f"{', '.join(SELECTIONS)}")
        check(self.crossover in CROSSOVERS, f"unknown crossover '{self.crossover}': choose "
              f"{', '.join(CROSSOVERS)}")
        check(self.tournament_size >= 1, f"tournament_size must be >= 1, got {self.tournament_size}")
        check(0 <= self.crossover_rate <= 1, f"crossover_rate must be in [0, 1], got {self.crossover_rate}")
        check(self.blend_alpha >= 0, f"blend_alpha must be >= 0, got {self.blend_alpha}")
        check(0 <= self.mutation_rate <= 1, f"mutation_rate must be in [0, 1], got {self.mutation_rate}")
        check(self.mutation_scale >= 0, f"mutation_scale must be >= 0, got {self.mutation_scale}")
        check(0 <= self.elite < self.population,
              f"elite must be in [0, population), got {self.elite} with population {self.population}")


@register
class GeneticAlgorithm(PopulationAlgorithm):
    """Genetic algorithm; see the module docstring."""

    name = "ga"
    label = "GA"
    Options = GAOptions

    def __init__(self, ctx, options: GAOptions) -> None:
        super().__init__(ctx, options)
        self.pop = self.initial_population()  # (P, D)
        self.losses: Tensor = torch.empty(0, dtype=torch.float64)  # (P,) once evaluated

    def select(self, fitness: Tensor, n: int) -> Tensor:
        """n parent indices drawn by the configured selection scheme."""
        g, o, P = self.ctx.generator, self.options, len(fitness)
        if o.selection == "tournament":
            contestants = torch.randint(P, (n, o.tournament_size), generator=g)
            return contestants.gather(1, fitness[contestants].argmax(1, keepdim=True)).squeeze(1)
        if o.selection == "roulette":
            weights = fitness
        else:  # rank: the worst has weight 1, the best weight P
            weights = torch.empty_like(fitness)
            weights[fitness.argsort()] = torch.arange(1, P + 1, dtype=fitness.dtype)
        return torch.multinomial(weights, n, replacement=True, generator=g)

    def cross(self, a: Tensor, b: Tensor) -> Tensor:
        """Children (n, D) of parent pairs a, b (n, D)."""
        g, o = self.ctx.generator, self.options
        n, D = a.shape
        if o.crossover == "uniform":
            child = torch.where(torch.rand(n, D, generator=g) < 0.5, a, b)
        elif o.crossover == "one-point":
            cut = torch.randint(1, max(D, 2), (n, 1), generator=g)
            child = torch.where(torch.arange(D) < cut, a, b)
        else:
            lo, hi = torch.minimum(a, b), torch.maximum(a, b)
            d = hi - lo
            u = torch.rand(n, D, generator=g, dtype=a.dtype)
            child = lo - o.blend_alpha * d + u * (1 + 2 * o.blend_alpha) * d
        keep = torch.rand(n, 1, generator=g) >= o.crossover_rate
        return torch.where(keep, a, child)

    def generation(self) -> Dict[str, float]:
        o, g = self.options, self.ctx.generator
        if len(self.losses) == 0:  # generation 0: the initial population
            self.losses = self.evaluate(self.pop)
        fitness = 1.0 / (self.losses + o.epsilon)  # (P,)
        n = o.population - o.elite
        parents = self.select(fitness, 2 * n)
        children = self.cross(self.pop[parents[:n]], self.pop[parents[n:]])  # (n, D)
        mask = torch.rand(n, self.D, generator=g) < o.mutation_rate
        children = children + mask * (o.mutation_scale * torch.randn(n, self.D, generator=g, dtype=self.dtype))
        elite = self.losses.argsort()[:o.elite]
        child_losses = self.evaluate(children, diversity=False)
        self.pop = torch.cat([self.pop[elite], children])
        self.losses = torch.cat([self.losses[elite], child_losses])
        self.last_losses = self.losses
        self.diversity = spread(self.pop)
        return {}

    def search_state(self) -> Dict[str, Any]:
        return {"population": self.pop.clone(), "losses": self.losses.clone()}

    def load_search_state(self, state: Dict[str, Any]) -> None:
        self.pop, self.losses = state["population"].clone(), state["losses"].clone()

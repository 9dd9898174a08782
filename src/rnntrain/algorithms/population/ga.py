r"""Genetic algorithm over the weight vector (the recipe of docs/global-search.md).

One chromosome = one network, one gene = one weight. Each generation::

    fitness_i = 1 / (loss_i + epsilon)                      (reciprocal of the MSE)
    parents   = selection(fitness)                          tournament | roulette | rank
    children  = crossover(parent_a, parent_b)               uniform | one-point | blend (BLX-alpha)
    children += mask * mutation_scale * N(0, 1),  mask ~ Bernoulli(mutation_rate) per gene
    next      = elite best individuals  +  children         (elites are not re-evaluated)

Blend crossover is Eshelman & Schaffer's BLX-alpha (1993): each gene uniform in
[min - alpha d, max + alpha d], d = |a - b|. All draws come from the run's generator.

The uniform crossover's coins and the mutation's Bernoulli mask are drawn as bits and as
gaps (:func:`coin_masks`, :func:`bernoulli_positions`) rather than one uniform number per
gene: torch's generator costs about 7 ns a number here, and ``torch.where`` on a bool mask
about as much again, so at P = 50 and 321 genes the two per-gene draws and selects took
0.7 ms of an 8.7 ms generation; the same distributions drawn this way take about 0.3 ms.
"""
from __future__ import annotations

import math
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


_INT = {2: torch.int16, 4: torch.int32, 8: torch.int64}  # an integer view of each float width
_TO_SIGN = 63 - torch.arange(63)  # shifts that move bit s of a word to its sign bit


def coin_masks(heads: Tensor, D: int, generator: torch.Generator) -> Tensor:
    """(n, D) int64 masks: each entry -1 (every bit set) or 0, independently with
    probability 1/2, from 63 bits of one random word (``random_()`` fills an int64 with
    ``random64 mod 2^63``: bits 0-62 are fair); a row where ``heads`` (n,) is True is all -1."""
    n = len(heads)
    words = torch.empty(n, -(-D // 63), 1, dtype=torch.int64).random_(generator=generator)
    words.masked_fill_(heads[:, None, None], -1)
    return ((words << _TO_SIGN) >> 63).view(n, -1)[:, :D]  # arithmetic shift: the bit, repeated


def select_bits(mask: Tensor, a: Tensor, b: Tensor) -> Tensor:
    """a's genes where ``mask`` is -1, b's where it is 0, bit for bit (NaN and inf too):
    b ^ ((a ^ b) & mask) on the floats' bits. 4x ``torch.where`` with a bool mask here."""
    it = _INT[a.element_size()]
    ia, ib = a.view(it), b.view(it)
    return (ib ^ ((ia ^ ib) & mask.to(it))).view(a.dtype)


def bernoulli_positions(count: int, p: float, generator: torch.Generator, draws: int = 0) -> Tensor:
    """The sorted indices in [0, count) of independent Bernoulli(p) successes, as a long
    tensor: the gaps between successive successes are Geometric(p) on {1, 2, ...}, drawn by
    inversion, floor(log(1 - u) / log(1 - p)) + 1, u ~ U[0, 1). About count * p numbers
    instead of count, ``draws`` at a time (0: enough for all but once in ~10^9 calls)."""
    if p <= 0 or count == 0:
        return torch.zeros(0, dtype=torch.long)
    if p >= 1:
        return torch.arange(count)
    mean = count * p
    k = draws or int(mean + 6 * math.sqrt(mean * (1 - p))) + 16  # six standard deviations over the mean
    scale, parts, last = 1.0 / math.log1p(-p), [], 0.0
    while last < count:
        u = torch.rand(k, generator=generator, dtype=torch.float64)
        parts.append(torch.log1p(-u).mul_(scale).floor_().add_(1).cumsum_(0).add_(last))  # 1-based
        last = float(parts[-1][-1])
    ends = parts[0] if len(parts) == 1 else torch.cat(parts)
    return ends[:int(torch.searchsorted(ends, float(count), right=True))].long() - 1


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
        keep = torch.rand(n, 1, generator=g) >= o.crossover_rate  # (n, 1): a copy of parent a
        if o.crossover == "uniform":
            return select_bits(coin_masks(keep[:, 0], D, g), a, b)
        if o.crossover == "one-point":
            cut = torch.randint(1, max(D, 2), (n, 1), generator=g)
            child = torch.where(torch.arange(D) < cut, a, b)
        else:
            lo, hi = torch.minimum(a, b), torch.maximum(a, b)
            d = hi - lo
            u = torch.rand(n, D, generator=g, dtype=a.dtype)
            child = lo - o.blend_alpha * d + u * (1 + 2 * o.blend_alpha) * d
        return torch.where(keep, a, child)

    def generation(self) -> Dict[str, float]:
        o, g = self.options, self.ctx.generator
        if len(self.losses) == 0:  # generation 0: the initial population
            self.losses = self.evaluate(self.pop)
        fitness = 1.0 / (self.losses + o.epsilon)  # (P,)
        n = o.population - o.elite
        parents = self.select(fitness, 2 * n)
        children = self.cross(self.pop[parents[:n]], self.pop[parents[n:]]).contiguous()  # (n, D), its own
        mutated = bernoulli_positions(children.numel(), o.mutation_rate, g)
        noise = o.mutation_scale * torch.randn(len(mutated), generator=g, dtype=self.dtype)
        children.view(-1).index_add_(0, mutated, noise)
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

r"""What every population method shares: options, evaluation, bests, stopping, memetic phase.

The recipe (see docs/global-search.md): one gene per weight (:mod:`rnntrain.models.vector`),
the whole training set presented to every network, fitness the reciprocal of the MSE
(``1 / (loss + epsilon)``; the task's loss, which is the MSE for regression tasks),
and training stops at whichever comes first of

1. ``solved_fraction`` of the training examples within ``tolerance`` (the best individual),
2. the best training loss at or below ``target_loss``,
3. the maximum number of generations (``train.epochs``, ``--generations``).

A subclass implements :meth:`PopulationAlgorithm.generation` (one generation, evaluating
through :meth:`evaluate`) and :meth:`search_state` / :meth:`load_search_state` (its
population, velocities, temperatures or search distribution as plain tensors). The
best individual so far is kept in the model after every generation, so the trainer's
evaluation, early stopping and checkpoints see it like any other weights.

Memetic option (``finetune_epochs = k``): the last k rounds hand the best individual to
BPTT (with the run's ``[optim]``) for gradient fine-tuning, in the same run.
"""
from __future__ import annotations

import dataclasses
import math
from abc import abstractmethod
from dataclasses import dataclass
from typing import Any, Dict, Optional

import torch
from torch import Tensor

from ...config.schema import check
from ...errors import UserError
from ..base import Algorithm, Context, StepCallback
from ..bptt import BPTT, BPTTOptions
from .evaluate import PopulationEvaluator


def spread(pop: Tensor) -> float:
    """The population's diversity metric: the mean over weights of their sample standard
    deviation across individuals, pop (P, D) -> float (0 for one individual). Written out:
    ``Tensor.std(0)`` took 0.2 ms on (50, 305) doubles, 5x this, twice a generation."""
    if len(pop) < 2:
        return 0.0
    x = pop.double()
    return float((x - x.mean(0)).square_().sum(0).div_(len(x) - 1).sqrt_().mean())


@dataclass(frozen=True)
class PopulationOptions:
    population: int = 50  # individuals per generation (--population)
    init_range: float = 0.5  # initial genes drawn from U(-r, r) (individual 0: the model's init)
    epsilon: float = 1e-8  # fitness = 1 / (loss + epsilon)
    target_loss: float = 0.0  # stop when the best training loss <= this (0 = off)
    solved_fraction: float = 0.0  # stop when this fraction of examples is within tolerance (0 = off)
    tolerance: float = 0.1  # largest absolute error for an example to count as learned
    finetune_epochs: int = 0  # memetic: last k rounds are BPTT epochs from the best individual
    memory_mb: int = 1024  # activation budget of one evaluation chunk (chunks of the population)

    def __post_init__(self) -> None:
        check(self.population >= 2, f"population must be >= 2, got {self.population} (--population)")
        check(self.init_range > 0, f"init_range must be > 0, got {self.init_range}")
        check(self.epsilon > 0, f"epsilon must be > 0, got {self.epsilon}")
        check(self.target_loss >= 0, f"target_loss must be >= 0 (0 = off), got {self.target_loss}")
        check(0 <= self.solved_fraction <= 1,
              f"solved_fraction must be in [0, 1] (0 = off), got {self.solved_fraction}")
        check(self.tolerance >= 0, f"tolerance must be >= 0, got {self.tolerance}")
        check(self.finetune_epochs >= 0, f"finetune_epochs must be >= 0, got {self.finetune_epochs}")
        check(self.memory_mb > 0, f"memory_mb must be > 0, got {self.memory_mb}")


class PopulationAlgorithm(Algorithm):
    """Base of GA, PSO, annealing, CMA-ES and guessing; see the module docstring."""

    unit = "generation"
    label = "population search"  # for stop reasons
    parallel = "population"  # under torchrun each process evaluates its share of the individuals

    def __init__(self, ctx: Context, options: PopulationOptions) -> None:
        super().__init__(ctx, options)
        self.generations = ctx.rounds - options.finetune_epochs
        if self.generations < 1:
            raise UserError(f"finetune_epochs = {options.finetune_epochs} leaves no generations of "
                            f"{ctx.rounds} rounds: raise --generations or lower finetune_epochs")
        self.evaluator = PopulationEvaluator(ctx.model, ctx.task, options.tolerance, options.memory_mb,
                                             ctx.dist)
        self.layout = self.evaluator.layout
        self.D = self.layout.size
        self.dtype = next(ctx.model.parameters()).dtype
        self.generation_count = 0
        self.evaluations = 0
        self.best = self.layout.vector(ctx.model)  # (D,)
        self.loaded = self.best  # the vector the model's weights hold (a new best is a new tensor)
        self.best_loss = float("inf")
        self.best_within = 0.0
        self.solved_at: Optional[int] = None  # evaluations until the first solved individual
        self.last_losses: Optional[Tensor] = None  # (P,) of the latest evaluated population
        self.diversity = 0.0
        self.reason: Optional[str] = None  # criterion met (pending while fine-tuning)
        self.finetune: Optional[BPTT] = None
        self.finetune_done = 0

    # -- shared pieces ---------------------------------------------------------------------
    def sequences_per_step(self) -> int:
        return min(self.evaluator.chunk, self.options.population) * self.evaluator.examples

    def initial_population(self) -> Tensor:
        """(P, D): genes from U(-init_range, init_range); row 0 is the model's initial weights."""
        g, r = self.ctx.generator, self.options.init_range
        pop = (torch.rand(self.options.population, self.D, generator=g, dtype=self.dtype) * 2 - 1) * r
        pop[0] = self.layout.vector(self.ctx.model)
        return pop

    def solved(self, within: float) -> bool:
        f = self.options.solved_fraction
        return f > 0 and within >= f - 1e-12

    def evaluate(self, pop: Tensor, *, diversity: bool = True) -> Tensor:
        """Losses (P,) of ``pop`` (P, D); updates the best individual and the counters, and
        the diversity metric from ``pop`` (``diversity=False``: the caller sets it from the
        population it keeps, as GA and annealing do).

        Ordering of individuals: solved (``solved_fraction`` of examples within tolerance)
        before unsolved, then lower loss."""
        losses, within = self.evaluator(pop)
        if self.options.solved_fraction:
            solved = torch.tensor([self.solved(float(w)) for w in within])
            if solved.any() and self.solved_at is None:
                self.solved_at = self.evaluations + int(solved.nonzero()[0, 0]) + 1
            key = torch.where(solved, losses, math.inf) if solved.any() else losses
            i = int(torch.argmin(key))
            now_solved = bool(solved[i])
        else:  # (no criterion: the lowest loss, without the masks)
            i, now_solved = int(torch.argmin(losses)), False
        better = (now_solved and not self.solved(self.best_within)) or \
                 (now_solved == self.solved(self.best_within) and float(losses[i]) < self.best_loss)
        if better:
            self.best, self.best_loss, self.best_within = pop[i].clone(), float(losses[i]), float(within[i])
        self.evaluations += len(pop)
        self.ctx.work.add(self.evaluator.evaluated * self.evaluator.work_steps)  # this process's share
        self.last_losses = losses
        if diversity:
            self.diversity = spread(pop)
        return losses

    # -- what a method implements ----------------------------------------------------------
    @abstractmethod
    def generation(self) -> Dict[str, float]:
        """One generation (calls :meth:`evaluate`); returns method-specific metrics."""

    @abstractmethod
    def search_state(self) -> Dict[str, Any]:
        """Population, velocities, temperatures, distribution: plain tensors and numbers."""

    @abstractmethod
    def load_search_state(self, state: Dict[str, Any]) -> None:
        ...

    # -- the protocol ----------------------------------------------------------------------
    def run_round(self, on_step: Optional[StepCallback] = None) -> Dict[str, float]:
        if self.finetune is not None or (self.reason is not None and self.options.finetune_epochs):
            return self._finetune_round(on_step)
        extra = self.generation()
        self.generation_count += 1
        if self.best is not self.loaded:  # writing the same weights again was 1 % of a GA generation
            self.layout.load(self.ctx.model, self.best)
            self.loaded = self.best
        losses = self.last_losses
        eps = self.options.epsilon
        finite = losses[torch.isfinite(losses)]
        metrics = {"loss": self.best_loss,
                   "fitness_best": 1.0 / (self.best_loss + eps),
                   "fitness_mean": float((1.0 / (losses + eps)).mean()),
                   "loss_population_mean": float(finite.mean()) if len(finite) else float("inf"),
                   "within_tolerance": self.best_within,
                   "diversity": self.diversity,
                   "evaluations": float(self.evaluations)}
        metrics.update(extra)
        if on_step is not None:
            on_step(self.best_loss)
        self._check_criteria()
        return metrics

    def _check_criteria(self) -> None:
        if self.reason is not None:
            return
        o, g = self.options, self.generation_count
        if self.solved(self.best_within):
            self.reason = (f"{self.label}: {self.best_within:.1%} of training examples within tolerance "
                           f"{o.tolerance:g} (criterion {o.solved_fraction:.1%}) at generation {g}, "
                           f"after {self.solved_at} evaluations")
        elif o.target_loss and self.best_loss <= o.target_loss:
            self.reason = (f"{self.label}: training loss {self.best_loss:.4g} <= target_loss "
                           f"{o.target_loss:g} at generation {g}")
        elif g >= self.generations:
            self.reason = f"{self.label}: maximum number of generations ({self.generations}) reached"

    def _finetune_round(self, on_step: Optional[StepCallback]) -> Dict[str, float]:
        if self.finetune is None:
            self.layout.load(self.ctx.model, self.best)
            ctx = dataclasses.replace(self.ctx, rounds=self.options.finetune_epochs)
            self.finetune = BPTT(ctx, BPTTOptions())
        metrics = self.finetune.run_round(on_step)
        self.finetune_done += 1
        metrics["evaluations"] = float(self.evaluations)
        return metrics

    def stop_reason(self) -> Optional[str]:
        k = self.options.finetune_epochs
        if self.reason is None:
            return None
        if k == 0:
            return self.reason
        if self.finetune_done >= k:
            return f"{self.reason}; then {k} BPTT fine-tuning epochs"
        return None

    def state_dict(self) -> Dict[str, Any]:
        return {"generation": self.generation_count, "evaluations": self.evaluations,
                "best": self.best.clone(), "best_loss": self.best_loss, "best_within": self.best_within,
                "solved_at": -1 if self.solved_at is None else self.solved_at,
                "last_losses": self.last_losses, "diversity": self.diversity,
                "reason": self.reason or "", "finetune_done": self.finetune_done,
                "finetune": self.finetune.state_dict() if self.finetune is not None else None,
                "search": self.search_state()}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.generation_count, self.evaluations = int(state["generation"]), int(state["evaluations"])
        self.best = state["best"].clone()
        self.best_loss, self.best_within = float(state["best_loss"]), float(state["best_within"])
        self.solved_at = None if state["solved_at"] < 0 else int(state["solved_at"])
        self.last_losses, self.diversity = state["last_losses"], float(state["diversity"])
        self.reason = state["reason"] or None
        self.finetune_done = int(state["finetune_done"])
        if state["finetune"] is not None:
            self.finetune = BPTT(dataclasses.replace(self.ctx, rounds=self.options.finetune_epochs),
                                 BPTTOptions())
            self.finetune.load_state_dict(state["finetune"])
        self.load_search_state(state["search"])

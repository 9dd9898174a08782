"""``Updater``: gradients in, parameter update out (optimizer + clipping + schedule).

Gradient algorithms (BPTT, and later RTRL, UORO, SnAp, CRBP) compute a gradient their
own way, put it in ``p.grad`` and call :meth:`Updater.step`; optimizers, clipping and
schedules therefore work identically for all of them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Optional

import torch
from torch import nn

from ..config.schema import check
from ..core import constrain

OPTIMIZERS = ("sgd", "adam", "rmsprop")
SCHEDULES = ("constant", "step", "exponential", "cosine")
MOMENTUM_SCHEDULES = ("constant", "sutskever")


def sutskever_momentum(t: int, mu_max: float) -> float:
    """Momentum at update t (0-based) of Sutskever et al. 2013, sec. 3.5:
    min(1 - 2^(-1 - log2(floor(t / 250) + 1)), mu_max): 0.5, 0.75, 0.833, 0.875, ... ."""
    return min(1.0 - 2.0 ** (-1.0 - math.log2(t // 250 + 1)), mu_max)


@dataclass(frozen=True)
class OptimConfig:
    name: str = "adam"  # sgd | adam | rmsprop (the seed example uses Adam)
    lr: float = 1e-3  # learning rate (the seed example's 0.001)
    momentum: float = 0.0  # sgd and rmsprop momentum
    nesterov: bool = False  # Nesterov momentum (sgd; needs momentum > 0)
    # constant | sutskever: mu_t = min(1 - 2^(-1 - log2(floor(t/250) + 1)), momentum) at update t
    # (Sutskever, Martens, Dahl & Hinton 2013, sec. 3.5; `momentum` is mu_max)
    momentum_schedule: str = "constant"
    weight_decay: float = 0.0  # L2 penalty
    clip: float = 1.0  # clip the global gradient norm at this value; 0 turns clipping off
    schedule: str = "constant"  # constant | step | exponential | cosine, stepped once per round
    step_size: int = 30  # rounds between decays (schedule = "step")
    gamma: float = 0.1  # decay factor (step: per step_size rounds; exponential: per round)
    min_lr: float = 0.0  # floor of the cosine schedule

    def __post_init__(self) -> None:
        check(self.name in OPTIMIZERS, f"unknown optimizer '{self.name}': choose one of {', '.join(OPTIMIZERS)}")
        check(self.lr > 0 and math.isfinite(self.lr), f"learning rate must be positive, got {self.lr} (--lr)")
        check(self.momentum >= 0, f"momentum must be >= 0, got {self.momentum}")
        check(not self.nesterov or (self.name == "sgd" and self.momentum > 0),
              "nesterov needs optimizer 'sgd' with momentum > 0")
        check(self.momentum_schedule in MOMENTUM_SCHEDULES, f"unknown momentum_schedule "
              f"'{self.momentum_schedule}': choose one of {', '.join(MOMENTUM_SCHEDULES)}")
        check(self.momentum_schedule == "constant" or (self.name == "sgd" and self.momentum > 0),
              "momentum_schedule 'sutskever' needs optimizer 'sgd' with momentum > 0 (its maximum)")
        check(self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}")
        check(self.clip >= 0, f"clip must be >= 0 (0 turns clipping off), got {self.clip}")
        check(self.schedule in SCHEDULES, f"unknown schedule '{self.schedule}': choose one of {', '.join(SCHEDULES)}")
        check(self.step_size > 0, f"step_size must be positive, got {self.step_size}")
        check(0 < self.gamma <= 1, f"gamma must be in (0, 1], got {self.gamma}")
        check(self.min_lr >= 0, f"min_lr must be >= 0, got {self.min_lr}")


def make_optimizer(config: OptimConfig, params: Iterable[nn.Parameter]) -> torch.optim.Optimizer:
    params = list(params)
    # One kernel per update instead of one per parameter: `fused` (SGD, Adam; CPU and CUDA
    # since torch 2.4) or `foreach` (RMSprop). torch only picks these by default on CUDA,
    # but on small recurrent models the per-parameter loop is a large part of a CPU step.
    common = {"lr": config.lr, "weight_decay": config.weight_decay}
    if config.name == "sgd":
        return torch.optim.SGD(params, momentum=config.momentum, nesterov=config.nesterov,
                               fused=True, **common)
    if config.name == "adam":
        return torch.optim.Adam(params, fused=True, **common)
    return torch.optim.RMSprop(params, momentum=config.momentum, foreach=True, **common)


def make_schedule(config: OptimConfig, optimizer, rounds: int):
    """The per-round LR schedule, or None for a constant rate (no scheduler overhead)."""
    if config.schedule == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, config.step_size, config.gamma)
    if config.schedule == "exponential":
        return torch.optim.lr_scheduler.ExponentialLR(optimizer, config.gamma)
    if config.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, max(rounds, 1), config.min_lr)
    return None


class Updater:
    """Optimizer + global-norm clipping + per-round LR schedule over ``params``.

    Counts the updates and how many were clipped, so each round can report the
    clipped fraction (a high fraction means the learning rate or clip is off).
    """

    def __init__(self, config: OptimConfig, params: Iterable[nn.Parameter], rounds: int,
                 model: Optional[nn.Module] = None) -> None:
        self.config = config
        self.model = model  # projected onto its cells' constraints after every step
        self.params: List[nn.Parameter] = [p for p in params if p.requires_grad]
        self.optimizer = make_optimizer(config, self.params)
        self.schedule = make_schedule(config, self.optimizer, rounds)
        self.total_updates = 0  # over the whole run (the momentum schedule counts these)
        self.reset_counts()

    def reset_counts(self) -> None:
        self.updates = 0
        self.clipped = 0
        self.norm_sum = 0.0

    def zero_grad(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)

    def step(self) -> float:
        """Clip the gradients in ``p.grad`` and apply one optimizer step; returns the norm."""
        if self.config.clip > 0:
            norm = float(nn.utils.clip_grad_norm_(self.params, self.config.clip))
            self.clipped += norm > self.config.clip
        else:
            norm = float(torch.linalg.vector_norm(
                torch.stack([torch.linalg.vector_norm(p.grad) for p in self.params if p.grad is not None])))
        if self.config.momentum_schedule == "sutskever":
            for group in self.optimizer.param_groups:
                group["momentum"] = sutskever_momentum(self.total_updates, self.config.momentum)
        self.optimizer.step()
        if self.model is not None:
            constrain(self.model)
        self.updates += 1
        self.total_updates += 1
        self.norm_sum += norm
        return norm

    def end_round(self) -> Dict[str, float]:
        """Step the schedule; return this round's lr, clipped fraction and mean gradient norm."""
        stats = {"lr": self.optimizer.param_groups[0]["lr"],
                 "clipped_fraction": self.clipped / max(self.updates, 1),
                 "grad_norm": self.norm_sum / max(self.updates, 1)}
        if self.schedule is not None:
            self.schedule.step()
        self.reset_counts()
        return stats

    def state_dict(self) -> Dict[str, Any]:
        return {"optimizer": self.optimizer.state_dict(),
                "schedule": self.schedule.state_dict() if self.schedule is not None else {},
                "total_updates": self.total_updates}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.total_updates = int(state.get("total_updates", 0))
        if self.schedule is not None:
            self.schedule.load_state_dict(state["schedule"])

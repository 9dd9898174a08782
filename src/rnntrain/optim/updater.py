"""``Updater``: gradients in, parameter update out (optimizer + clipping + schedule).

Gradient algorithms (BPTT, and later RTRL, UORO, SnAp, CRBP) compute a gradient their
own way, put it in ``p.grad`` and call :meth:`Updater.step`; optimizers, clipping and
schedules therefore work identically for all of them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List

import torch
from torch import nn

from ..config.schema import check

OPTIMIZERS = ("sgd", "adam", "rmsprop")
SCHEDULES = ("constant", "step", "exponential", "cosine")


@dataclass(frozen=True)
class OptimConfig:
    name: str = "adam"  # sgd | adam | rmsprop (the seed example uses Adam)
    lr: float = 1e-3  # learning rate (the seed example's 0.001)
    momentum: float = 0.0  # sgd and rmsprop momentum
    nesterov: bool = False  # Nesterov momentum (sgd; needs momentum > 0)
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

    def __init__(self, config: OptimConfig, params: Iterable[nn.Parameter], rounds: int) -> None:
        self.config = config
        self.params: List[nn.Parameter] = [p for p in params if p.requires_grad]
        self.optimizer = make_optimizer(config, self.params)
        self.schedule = make_schedule(config, self.optimizer, rounds)
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
        self.optimizer.step()
        self.updates += 1
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
                "schedule": self.schedule.state_dict() if self.schedule is not None else {}}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        if self.schedule is not None:
            self.schedule.load_state_dict(state["schedule"])

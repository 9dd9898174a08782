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
from torch import Tensor, nn

from ..config.schema import check
from ..core import constrained
from .rules import RULES, State, learning_rate

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


class Updater:
    """Update rule + global-norm clipping + per-round LR schedule over ``params``.

    Counts the updates and how many were clipped, so each round can report the
    clipped fraction (a high fraction means the learning rate or clip is off).
    The rule is torch's optimizer run through its functional API (optim/rules.py says
    why); the state and checkpoint layout are torch.optim's and its schedulers'.
    """

    def __init__(self, config: OptimConfig, params: Iterable[nn.Parameter], rounds: int,
                 model: Optional[nn.Module] = None) -> None:
        self.config = config
        # projected onto their cells' constraints after every step
        self.constrained = constrained(model) if model is not None else []
        self.params: List[nn.Parameter] = [p for p in params if p.requires_grad]
        self.rule = RULES[config.name](config.weight_decay, config.momentum, config.nesterov)
        self.states: List[State] = [{} for _ in self.params]  # filled at a parameter's first update
        self.rounds = rounds  # the cosine schedule's period
        self.round = 0  # rounds completed: the schedule's position
        self.total_updates = 0  # over the whole run (the momentum schedule counts these)
        self.reset_counts()

    @property
    def lr(self) -> float:
        c = self.config
        return learning_rate(c.schedule, c.lr, self.round, rounds=self.rounds, step_size=c.step_size,
                             gamma=c.gamma, min_lr=c.min_lr)

    @property
    def momentum(self) -> float:
        """This update's momentum (the Sutskever schedule's, or the configured constant)."""
        if self.config.momentum_schedule == "sutskever":
            return sutskever_momentum(self.total_updates, self.config.momentum)
        return self.config.momentum

    def reset_counts(self) -> None:
        self.updates = 0
        self.clipped = 0
        self.norm_sum = 0.0

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    def step(self) -> float:
        """Clip the gradients in ``p.grad`` and apply one update; returns the gradient norm.

        Parameters without a gradient are skipped, as torch's optimizers skip them."""
        which = [i for i, p in enumerate(self.params) if p.grad is not None]
        params = [self.params[i] for i in which]
        grads = [p.grad for p in params]
        norm = self._clip(grads) if grads else 0.0
        if grads:
            states = []
            for i in which:
                if not self.states[i]:
                    self.states[i] = self.rule.new_state(self.params[i])
                states.append(self.states[i])
            with torch.no_grad():
                self.rule.apply(params, grads, states, self.lr, self.momentum)
        for core in self.constrained:
            core.constrain_()
        self.updates += 1
        self.total_updates += 1
        self.norm_sum += norm
        return norm

    @torch.no_grad()
    def _clip(self, grads: List[Tensor]) -> float:
        """The global norm of ``grads``; scaled in place to ``config.clip`` when above it.

        ``nn.utils.clip_grad_norm_``'s arithmetic, bit for bit: per-tensor norms, their norm,
        and a factor clip / (norm + 1e-6) clamped at 1. Fewer calls, though: its grouping by
        device and dtype, its scalar tensor arithmetic and its multiply by 1 when nothing is
        clipped cost as much as a small model's backward pass. The factor is only computed
        where it can be below 1 (norm within 1e-5 of the clip or above it)."""
        total = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
        norm, clip = float(total), self.config.clip
        if clip > 0:
            self.clipped += norm > clip
            if not norm < clip * (1 - 1e-5) - 1e-5:  # NaN too: it scales by NaN, as torch's
                torch._foreach_mul_(grads, torch.clamp(clip / (total + 1e-6), max=1.0))
        return norm

    def end_round(self) -> Dict[str, float]:
        """Advance the schedule; return this round's lr, clipped fraction and mean gradient norm."""
        stats = {"lr": self.lr, "clipped_fraction": self.clipped / max(self.updates, 1),
                 "grad_norm": self.norm_sum / max(self.updates, 1)}
        self.round += 1
        self.reset_counts()
        return stats

    def state_dict(self) -> Dict[str, Any]:
        """torch.optim's layout (state by parameter index, one parameter group) and its
        schedulers' ``last_epoch``: checkpoints from before the rules load unchanged."""
        group = {"lr": self.lr, "momentum": self.momentum, "params": list(range(len(self.params)))}
        return {"optimizer": {"state": {i: dict(s) for i, s in enumerate(self.states) if s},
                              "param_groups": [group]},
                "schedule": {"last_epoch": self.round},
                "total_updates": self.total_updates}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        saved = state["optimizer"]["state"]
        for i, p in enumerate(self.params):
            fresh = self.rule.new_state(p)
            # each entry in the dtype and on the device this run keeps it (torch's classes
            # cast the same way when loading); a momentum buffer like its parameter
            self.states[i] = {k: v.to(dtype=fresh.get(k, p).dtype, device=fresh.get(k, p).device)
                              for k, v in saved.get(i, {}).items()}
        self.total_updates = int(state.get("total_updates", 0))
        # a constant schedule saved no scheduler state before the rules; it needs none
        self.round = int(state.get("schedule", {}).get("last_epoch", 0))

"""Update rules: one optimizer's per-parameter state and its step, by torch's functional API.

``torch.optim.adam.adam``, ``torch.optim.sgd.sgd`` and ``torch.optim.rmsprop.rmsprop``
are the functions torch's optimizer classes call from their ``step``; a rule here keeps
the state the class would keep and calls the same function with the same arguments, so
an update is bit for bit the class's (tests/test_updater.py checks each rule against its
class). Why not the classes themselves: every method of ``torch.optim.Optimizer``
(constructor, ``step``, ``zero_grad``, ``state_dict``) imports ``torch._dynamo`` on first
use, 1.2-2.2 s per process on these machines, more than the whole training of a small
model; the functional API imports nothing (measured with torch 2.13). The state keeps
the classes' names and layout, so checkpoints written with the classes still load.

A rule is ``new_state(p)`` (the state a parameter starts with) and ``apply(params,
grads, states, lr, momentum)`` (one update, in place, of the parameters and states).
"""
from __future__ import annotations

import math
from typing import Callable, Dict, List, Optional

import torch
from torch import Tensor
from torch.optim.adam import adam
from torch.optim.rmsprop import rmsprop
from torch.optim.sgd import sgd

State = Dict[str, Tensor]


def _fused(params: List[Tensor]) -> bool:
    """torch's fused kernels (one kernel per update instead of one per parameter) take
    floating-point tensors on CPU and CUDA; torch only picks them by default on CUDA, but
    on small recurrent models the per-parameter loop is a large part of a CPU step."""
    return all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in params)


def _one_group(params: List[Tensor]) -> bool:
    """All on one device in one dtype (the optimizers group their tensors by both)."""
    device, dtype = params[0].device, params[0].dtype
    return all(p.device == device and p.dtype == dtype for p in params)


class Adam:
    """torch.optim.Adam(lr, weight_decay, betas=(0.9, 0.999), eps=1e-8), fused where it can."""

    betas = (0.9, 0.999)
    eps = 1e-8

    def __init__(self, weight_decay: float, momentum: float = 0.0, nesterov: bool = False) -> None:
        self.weight_decay = weight_decay

    def new_state(self, p: Tensor) -> State:
        # the classes keep `step` in float32 on the parameter's device for the fused kernel
        # and in the default float dtype on the CPU otherwise
        fused = _fused([p])
        step = torch.zeros((), dtype=torch.float32 if fused else _scalar_dtype(),
                           device=p.device if fused else "cpu")
        return {"step": step, "exp_avg": torch.zeros_like(p), "exp_avg_sq": torch.zeros_like(p)}

    def apply(self, params: List[Tensor], grads: List[Tensor], states: List[State], lr: float,
              momentum: float) -> None:
        exp_avgs, exp_avg_sqs = [s["exp_avg"] for s in states], [s["exp_avg_sq"] for s in states]
        steps = [s["step"] for s in states]
        if _one_group(params) and _fused(params[:1]):
            # what adam(fused=True) runs for one device and dtype, without its argument
            # checks and grouping (half its cost on a small model; same kernel, same bits)
            torch._foreach_add_(steps, 1)
            torch._fused_adam_(params, grads, exp_avgs, exp_avg_sqs, [], steps, amsgrad=False, lr=lr,
                               beta1=self.betas[0], beta2=self.betas[1], weight_decay=self.weight_decay,
                               eps=self.eps, maximize=False, grad_scale=None, found_inf=None)
            return
        adam(params, grads, exp_avgs, exp_avg_sqs, [], steps, fused=_fused(params), amsgrad=False,
             beta1=self.betas[0], beta2=self.betas[1], lr=lr,
             weight_decay=self.weight_decay, eps=self.eps, maximize=False)


class SGD:
    """torch.optim.SGD(lr, momentum, nesterov, weight_decay), fused where it can."""

    def __init__(self, weight_decay: float, momentum: float = 0.0, nesterov: bool = False) -> None:
        self.weight_decay, self.nesterov = weight_decay, nesterov
        self.has_momentum = momentum != 0

    def new_state(self, p: Tensor) -> State:
        return {}  # the momentum buffer appears at the first update, as in the class

    def apply(self, params: List[Tensor], grads: List[Tensor], states: List[State], lr: float,
              momentum: float) -> None:
        buffers: List[Optional[Tensor]] = [s.get("momentum_buffer") for s in states]
        sgd(params, grads, buffers, fused=_fused(params), weight_decay=self.weight_decay,
            momentum=momentum, lr=lr, dampening=0.0, nesterov=self.nesterov, maximize=False)
        if self.has_momentum:  # sgd() fills the list with the buffers it created
            for s, b in zip(states, buffers):
                s["momentum_buffer"] = b


class RMSprop:
    """torch.optim.RMSprop(lr, momentum, weight_decay, alpha=0.99, eps=1e-8), foreach
    (torch has no fused RMSprop kernel)."""

    alpha = 0.99
    eps = 1e-8

    def __init__(self, weight_decay: float, momentum: float = 0.0, nesterov: bool = False) -> None:
        self.weight_decay, self.momentum = weight_decay, momentum

    def new_state(self, p: Tensor) -> State:
        state = {"step": torch.zeros((), dtype=_scalar_dtype()), "square_avg": torch.zeros_like(p)}
        if self.momentum > 0:
            state["momentum_buffer"] = torch.zeros_like(p)
        return state

    def apply(self, params: List[Tensor], grads: List[Tensor], states: List[State], lr: float,
              momentum: float) -> None:
        rmsprop(params, grads, [s["square_avg"] for s in states], [],
                [s["momentum_buffer"] for s in states] if self.momentum > 0 else [],
                [s["step"] for s in states], foreach=True, lr=lr, alpha=self.alpha, eps=self.eps,
                weight_decay=self.weight_decay, momentum=self.momentum, centered=False,
                maximize=False, differentiable=False, capturable=False, has_complex=False)


def _scalar_dtype() -> torch.dtype:
    """The dtype torch's optimizers keep a non-fused `step` counter in."""
    return torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32


RULES = {"sgd": SGD, "adam": Adam, "rmsprop": RMSprop}


def learning_rate(schedule: str, lr: float, round: int, *, rounds: int, step_size: int,
                  gamma: float, min_lr: float) -> float:
    """The learning rate after ``round`` completed rounds: torch's StepLR, ExponentialLR
    and CosineAnnealingLR in their closed forms (T = max(rounds, 1)):

        step:        lr * gamma ** (round // step_size)
        exponential: lr * gamma ** round
        cosine:      min_lr + (lr - min_lr) * (1 + cos(pi * round / T)) / 2
    """
    forms: Dict[str, Callable[[], float]] = {
        "constant": lambda: lr,
        "step": lambda: lr * gamma ** (round // step_size),
        "exponential": lambda: lr * gamma ** round,
        "cosine": lambda: min_lr + (lr - min_lr) * (1 + math.cos(math.pi * round / max(rounds, 1))) / 2,
    }
    return forms[schedule]()

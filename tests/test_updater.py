"""The Updater: torch's optimizers, clipping and schedules, without torch.optim's classes.

Each rule's updates equal the torch.optim class's bit for bit (same functional kernel,
same state), clipping equals ``nn.utils.clip_grad_norm_``, the schedules follow torch's
schedulers, a checkpoint written by the classes loads and continues identically, and a
training run never imports ``torch._dynamo`` (the reason for the rules: optim/rules.py).
"""
from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from torch import nn

from rnntrain.optim import OptimConfig, Updater

CASES = {
    "adam": dict(name="adam", lr=0.01),
    "adam-decay": dict(name="adam", lr=0.01, weight_decay=0.1),
    "sgd": dict(name="sgd", lr=0.1),
    "sgd-nesterov": dict(name="sgd", lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01),
    "rmsprop": dict(name="rmsprop", lr=0.01),
    "rmsprop-momentum": dict(name="rmsprop", lr=0.01, momentum=0.5),
}


def torch_class(config: OptimConfig, params):
    """What the Updater stood for before its rules: torch's class as make_optimizer built it."""
    common = {"lr": config.lr, "weight_decay": config.weight_decay}
    if config.name == "sgd":
        return torch.optim.SGD(params, momentum=config.momentum, nesterov=config.nesterov,
                               fused=True, **common)
    if config.name == "adam":
        return torch.optim.Adam(params, fused=True, **common)
    return torch.optim.RMSprop(params, momentum=config.momentum, foreach=True, **common)


def parameters(dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [nn.Parameter(torch.randn(5, 3, generator=g, dtype=dtype)),
            nn.Parameter(torch.randn(3, generator=g, dtype=dtype))]


def gradients(step: int, params, scale: float):
    """Step-dependent gradients, some steps above the clip and some below."""
    g = torch.Generator().manual_seed(100 + step)
    return [torch.randn(p.shape, generator=g, dtype=p.dtype) * scale * (1 + step % 3) for p in params]


def run_class(config, params, steps, start=0, optimizer=None):
    optimizer = optimizer or torch_class(config, params)
    norms = []
    for t in range(start, start + steps):
        for p, g in zip(params, gradients(t, params, 0.15)):
            p.grad = g
        norms.append(float(nn.utils.clip_grad_norm_(params, config.clip)))
        optimizer.step()
    return optimizer, norms


def run_updater(config, params, steps, start=0, updater=None):
    updater = updater or Updater(config, params, rounds=1)
    norms = []
    for t in range(start, start + steps):
        for p, g in zip(params, gradients(t, params, 0.15)):
            p.grad = g
        norms.append(updater.step())
    return updater, norms


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("case", CASES)
def test_each_rule_updates_exactly_like_its_torch_class_with_clipping(case, dtype):
    config = OptimConfig(**CASES[case], clip=1.0)
    ours, theirs = parameters(dtype), parameters(dtype)
    updater, our_norms = run_updater(config, ours, 12)
    _, their_norms = run_class(config, theirs, 12)
    assert our_norms == their_norms
    assert 0 < updater.clipped < 12  # both branches of the clip were taken
    for a, b in zip(ours, theirs):
        assert torch.equal(a, b)


def test_a_checkpoint_written_by_the_torch_class_continues_exactly(tmp_path):
    """Run directories from before the rules hold torch.optim's state_dict."""
    config = OptimConfig(name="adam", lr=0.01, clip=1.0)
    theirs = parameters(torch.float32)
    optimizer, _ = run_class(config, theirs, 5)
    torch.save({"optimizer": optimizer.state_dict(), "schedule": {}, "total_updates": 5}, tmp_path / "c.pt")
    ours = [nn.Parameter(p.detach().clone()) for p in theirs]
    updater = Updater(config, ours, rounds=1)
    updater.load_state_dict(torch.load(tmp_path / "c.pt", weights_only=True))
    run_class(config, theirs, 7, start=5, optimizer=optimizer)
    run_updater(config, ours, 7, start=5, updater=updater)
    for a, b in zip(ours, theirs):
        assert torch.equal(a, b)
    assert updater.states[0]["step"].dtype == torch.float32 and float(updater.states[0]["step"]) == 12


def test_the_updaters_own_state_dict_resumes_bit_for_bit():
    config = OptimConfig(name="sgd", lr=0.1, momentum=0.9, clip=1.0, schedule="step", step_size=2)
    whole = parameters(torch.float64)
    up, _ = run_updater(config, whole, 4)
    up.end_round()
    up, _ = run_updater(config, whole, 4, start=4, updater=up)
    half = parameters(torch.float64)
    first, _ = run_updater(config, half, 4)
    first.end_round()
    again = Updater(config, half, rounds=1)
    again.load_state_dict(first.state_dict())
    assert again.lr == first.lr and again.round == 1
    run_updater(config, half, 4, start=4, updater=again)
    for a, b in zip(whole, half):
        assert torch.equal(a, b)


@pytest.mark.parametrize("schedule,scheduler", [
    ("step", lambda o: torch.optim.lr_scheduler.StepLR(o, 3, 0.5)),
    ("exponential", lambda o: torch.optim.lr_scheduler.ExponentialLR(o, 0.5)),
    ("cosine", lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, 10, 0.001)),
])
def test_schedules_give_torchs_learning_rates_round_by_round(schedule, scheduler):
    config = OptimConfig(lr=0.1, schedule=schedule, step_size=3, gamma=0.5, min_lr=0.001)
    updater = Updater(config, parameters(torch.float64), rounds=10)
    optimizer = torch.optim.SGD(parameters(torch.float64), lr=0.1)
    sched = scheduler(optimizer)
    ours, theirs = [], []
    for _ in range(10):
        ours.append(updater.end_round()["lr"])
        theirs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()  # no gradients: nothing moves, but the scheduler expects the call
        sched.step()
    # torch steps its schedulers recursively (lr_t from lr_{t-1}), the rules use the closed
    # forms: equal up to rounding
    assert ours == pytest.approx(theirs, rel=1e-12, abs=1e-15)
    assert ours[0] == 0.1 and ours[-1] < 0.1


def test_parameters_without_a_gradient_are_left_alone():
    a, b = parameters(torch.float64)
    before = b.detach().clone()
    updater = Updater(OptimConfig(name="adam", lr=0.1), [a, b], rounds=1)
    a.grad = torch.ones_like(a)
    updater.step()
    assert torch.equal(b, before) and not updater.states[1] and bool((a != 0).all())


def test_a_nan_gradient_poisons_the_update_as_torchs_clipping_does():
    config = OptimConfig(name="sgd", lr=0.1, clip=1.0)
    (ours, _), (theirs, _) = parameters(torch.float64), parameters(torch.float64)
    updater, optimizer = Updater(config, [ours], rounds=1), torch_class(config, [theirs])
    for p in (ours, theirs):
        p.grad = torch.full_like(p, float("nan"))
    updater.step()
    nn.utils.clip_grad_norm_([theirs], 1.0)
    optimizer.step()
    assert bool(ours.isnan().all()) and bool(theirs.isnan().all())


def test_a_training_run_never_imports_torch_dynamo():
    """torch.optim's classes import torch._dynamo (1-2 s) on first use; the rules do not. Nor
    does any other family's first round, or the gradient-flow monitor: torch.func's grad
    transform imported it too, in Hessian-free's products (now over kept graphs:
    algorithms/curvature.py), RTRL's Jacobians (now the compiled kernel's, and autograd's for
    cells without a kernel) and the analyses' step Jacobians (now analysis.step.batched_jacobians)."""
    code = ("import sys, rnntrain\n"
            "rnntrain.train(rnntrain.load_config(overrides=['train.epochs=2', 'optim.schedule=\"cosine\"',\n"
            "                                             'monitor.gradient_flow_every=1']))\n"
            "for name, cell in (('hf', 'rnn'), ('rtrl', 'rnn'), ('uoro', 'rnn'), ('snap1', 'rnn'), ('ga', 'rnn'),\n"
            "                   ('pso', 'rnn'), ('cmaes', 'rnn'), ('rtrl', 'ln-lstm')):\n"
            "    rnntrain.train(rnntrain.load_config(overrides=['train.epochs=1', f'algorithm.name=\"{name}\"',\n"
            "                                                   'model.hidden=8', f'model.cell=\"{cell}\"',\n"
            "                                                   'task.length=300']))\n"
            "print('torch._dynamo' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "False"

r"""The influence-balancing problem (Tallec & Ollivier 2017, "Unbiased Online Recurrent
Optimization", arXiv:1702.05043, sec. 6 "Influence balancing"): why truncation fails.

A linear system of n = 23 units with one scalar parameter θ,

.. math::  s_{t+1} = A s_t + \theta\,(\underbrace{1, \dots, 1}_{n_+ = 10}, \underbrace{-1, \dots, -1}_{n - n_+ = 13}),
           \qquad A = \tfrac12 (I + U), \qquad L_t = \tfrac12 (s^0_t - 1)^2,

with U the shift (A has 1/2 on its diagonal and superdiagonal), s_0 = 1. θ raises the first
unit at once (a positive short-term influence), but through A the 13 negative units reach
it later: at the fixed point s⁰ = 2θ(n₊ − n₋) = −6θ, so the optimum is θ = −1/6. Truncated
BPTT that looks back fewer steps than it takes the negative influence to arrive follows the
short-term sign and diverges; RTRL and UORO carry the whole influence and converge.
(Set-up as in the paper; learning rate 1e-4 (UORO 1e-5) and θ₀ = 0.5 as in google-research's
re-implementation of the experiment.)

    python -m rnntrain.experiments.influence_balancing --out docs/figures/influence_balancing.png
"""
from __future__ import annotations

import argparse
from typing import Dict, List

import torch
from torch import Tensor

from ..algorithms.online import StepFunction
from ..algorithms.rtrl import RTRLSensitivity
from ..algorithms.uoro import UOROSensitivity

N_UNITS, N_POSITIVE = 23, 10


class InfluenceBalancing(StepFunction):
    """The linear system above as a step function of θ (P = 1)."""

    P, S, F = 1, N_UNITS, 1
    readout_slice = slice(0, 1)

    def __init__(self) -> None:
        n = N_UNITS
        self.A = 0.5 * (torch.eye(n, dtype=torch.float64) + torch.diag(torch.ones(n - 1, dtype=torch.float64), 1))
        self.sign = torch.cat([torch.ones(N_POSITIVE), -torch.ones(n - N_POSITIVE)]).double()
        self.th = torch.tensor([0.5], dtype=torch.float64)

    def __call__(self, theta: Tensor, s: Tensor, x: Tensor) -> Tensor:
        return s @ self.A.t() + theta * self.sign

    def theta(self) -> Tensor:
        return self.th


def run_online(sens_cls, steps: int, lr: float, seed: int = 0) -> List[float]:
    """RTRL or UORO: update θ at every step from ∂L_t/∂s_t · M_t; returns the loss per step."""
    fn = InfluenceBalancing()
    sens = sens_cls(fn, torch.Generator().manual_seed(seed))
    s = torch.ones(1, N_UNITS, dtype=torch.float64)
    sens.reset(1, s)
    x = torch.zeros(1, 1, dtype=torch.float64)
    losses = []
    for _ in range(steps):
        s = sens.advance(fn.theta(), s, x)
        c = torch.zeros_like(s)
        c[0, 0] = s[0, 0] - 1.0  # ∂L/∂s
        losses.append(0.5 * float(s[0, 0] - 1.0) ** 2)
        fn.th = fn.th - lr * sens.gradient(c).sum(0)
    return losses


def run_truncated(k: int, steps: int, lr: float) -> List[float]:
    """Truncated BPTT: unroll k steps from the carried (detached) state, one update per piece."""
    fn = InfluenceBalancing()
    theta = fn.th.clone()
    s = torch.ones(1, N_UNITS, dtype=torch.float64)
    losses = []
    for _ in range(steps // k):
        th = theta.clone().requires_grad_(True)
        for _ in range(k):
            s = fn(th, s, None)
        loss = 0.5 * (s[0, 0] - 1.0) ** 2
        (g,) = torch.autograd.grad(loss, th)
        losses += [float(loss.detach())] * k
        theta = theta - lr * g
        s = s.detach()
        if not torch.isfinite(s).all() or float(loss.detach()) > 1e12:
            break
    return losses


def run(steps: int = 3000, lr: float = 1e-4) -> Dict[str, List[float]]:
    curves = {f"truncated BPTT, k={k}": run_truncated(k, steps, lr) for k in (1, 10, 100)}
    curves["RTRL"] = run_online(RTRLSensitivity, steps, lr)
    curves["UORO (lr / 10)"] = run_online(UOROSensitivity, steps, lr / 10)  # its variance needs a smaller rate
    return curves


def plot(curves: Dict[str, List[float]], out) -> None:
    import matplotlib
    matplotlib.use("Agg")
    from ..reporting.plots import plt, save

    fig, ax = plt.subplots(figsize=(8, 4.5))
    for name, ys in curves.items():
        ax.plot(range(1, len(ys) + 1), ys, label=name, lw=1.2, ls="--" if "BPTT" in name else "-")
    ax.set_yscale("log")
    ax.set_xlabel("time step")
    ax.set_ylabel("loss $\\frac{1}{2}(s^0_t - 1)^2$")
    ax.set_title("Influence balancing (Tallec & Ollivier 2017): truncation diverges")
    ax.legend()
    save(fig, out)


def main(argv=None) -> Dict[str, float]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default="docs/figures/influence_balancing.png")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--lr", type=float, default=1e-4)
    a = p.parse_args(argv)
    curves = run(a.steps, a.lr)
    plot(curves, a.out)
    final = {name: ys[-1] for name, ys in curves.items()}
    for name, v in final.items():
        print(f"{name:24s} final loss {v:.3e} after {len(curves[name])} steps")
    return final


if __name__ == "__main__":
    main()

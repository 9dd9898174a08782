"""Analysis timings: a full Lyapunov spectrum and a gradient-flow analysis.

    .venv/bin/python benchmarks/bench_analysis.py [--quick]

- Lyapunov spectrum, all 256 exponents, of a 256-unit random tanh network (gain 1.5)
  over 10,000 steps (quick: 1,000), by the QR method with Jacobians from vmap(jacrev).
- Gradient flow (‖∂L/∂h_k‖ for every k, σ_max(∂h_T/∂h_k) for every lag) of a 2-layer
  LSTM (64 units: a 256-dimensional state) on a batch of 4 sequences of 500 steps
  (quick: 100), through the model adapter (Recurrent.step).
"""
from __future__ import annotations

import math
import sys
import time

import torch

from rnntrain.analysis import lyapunov_spectrum, model_gradient_flow
from rnntrain.analysis.step import no_input
from rnntrain.models import ModelConfig, build_model
from rnntrain.tasks import TaskSpec


def _lyapunov(steps: int):
    N = 256
    g = torch.Generator().manual_seed(0)
    W = torch.randn(N, N, dtype=torch.float64, generator=g) * 1.5 / math.sqrt(N)
    h0 = torch.randn(N, dtype=torch.float64, generator=g)
    t = time.perf_counter()
    spec = lyapunov_spectrum(lambda h, x: torch.tanh(W @ h), h0, no_input(torch.float64), steps,
                             transient=100)
    return time.perf_counter() - t, spec


def _gradient_flow(steps: int):
    torch.manual_seed(0)
    model = build_model(ModelConfig(cell="lstm", hidden=64, layers=2), TaskSpec(1, 1, per_step=True))
    x, y = torch.randn(4, steps, 1), torch.randn(4, steps, 1)
    t = time.perf_counter()
    flow = model_gradient_flow(model, x, y, torch.nn.functional.mse_loss)
    return time.perf_counter() - t, flow


def main(quick: bool = False) -> str:
    ly_steps, gf_steps = (1000, 100) if quick else (10000, 500)
    t_ly, spec = _lyapunov(ly_steps)
    t_gf, flow = _gradient_flow(gf_steps)
    return "\n".join([
        f"torch {torch.__version__}, {torch.get_num_threads()} threads",
        "",
        "| analysis | size | seconds | result |",
        "|---|---|---:|---|",
        f"| Lyapunov spectrum (all 256 exponents) | 256-unit tanh, gain 1.5, {ly_steps} steps | "
        f"{t_ly:.1f} | λ_1 = {spec.largest:.4f}, Σλ = {float(spec.exponents.sum()):.3f} per step |",
        f"| gradient flow | 2-layer LSTM, 64 units (state 256), batch 4, {gf_steps} steps | "
        f"{t_gf:.1f} | rate {flow.rate:.4f} per step ({flow.regime}) |",
    ])


if __name__ == "__main__":
    print(main(quick="--quick" in sys.argv[1:]))

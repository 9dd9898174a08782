"""Hessian-free optimisation: cost per outer iteration against hidden size and T, and the
time of one Gauss-Newton-vector product as a multiple of one gradient evaluation.

A Gauss-Newton product is a tangent pass (the kept backward pass differentiated) and a
cotangent pass over the graphs of one forward and one backward pass, which every CG
iteration of an outer iteration shares; a gradient is one forward and one backward pass.
Both use the step path (the products need a backward pass autograd can differentiate), so
the ratio compares like with like; the fused gradient is listed too.
Adding problem (M&S 2011 variant), tanh RNN, curvature batch = 1/5 of the gradient batch.

    .venv/bin/python benchmarks/bench_hf.py [--quick]
"""
from __future__ import annotations

import statistics
import sys
import time

import torch

from rnntrain.algorithms.base import Context
from rnntrain.algorithms.curvature import Curvature
from rnntrain.algorithms.hf import HessianFree, HFOptions
from rnntrain.models import ModelConfig, build_model
from rnntrain.tasks import Batch, PathologicalConfig, PathologicalTask


def _timed(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _setup(hidden: int, T: int, batch: int, path: str = "auto"):
    task = PathologicalTask(PathologicalConfig(problem="adding", length=T, variant="le", eval_size=2))
    model = build_model(ModelConfig(hidden=hidden, init="sparse", spectral_radius=1.1, path=path),
                        task.spec, generator=torch.Generator().manual_seed(0))
    x, y = task.sample(batch, torch.Generator().manual_seed(1))
    return task, model, x, y


def product_vs_gradient(hidden: int, T: int, batch: int, repeats: int):
    task, model, x, y = _setup(hidden, T, batch, path="step")
    _, fused, _, _ = _setup(hidden, T, batch, path="fused")

    def gradient(m):
        def run():
            m.zero_grad()
            task.loss(m(x)[0], Batch(x, y)).backward()
        return run

    curv = Curvature(model, task.loss, Batch(x, y), structural=0.03)
    v = torch.randn_like(curv.theta)
    t_gv = _timed(lambda: curv.product(v), repeats)
    t_g = _timed(gradient(model), repeats)
    t_gf = _timed(gradient(fused), repeats)
    return t_gv, t_g, t_gf


def outer_iteration(hidden: int, T: int, batch: int, cg: int, repeats: int) -> float:
    task, model, x, y = _setup(hidden, T, batch)
    hf = HessianFree(Context(model, task, None, 1, batch, torch.Generator().manual_seed(0)),
                     HFOptions(cg_max_iters=cg, cg_tolerance=1e-12))  # exactly cg CG iterations
    return _timed(lambda: hf.step([Batch(x, y)]), repeats)


def main(quick: bool = False) -> str:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        repeats = 3 if quick else 5
        sizes = [(16, 50), (64, 50), (64, 100)] if quick else [(16, 50), (64, 50), (128, 50), (64, 100), (64, 200)]
        lines = ["### Hessian-free: Gauss-Newton product vs gradient (1 thread, batch 100)", "",
                 "| hidden | T | G·v (ms) | gradient, step path (ms) | ratio | gradient, fused (ms) |",
                 "|---:|---:|---:|---:|---:|---:|"]
        for H, T in sizes:
            gv, g, gf = product_vs_gradient(H, T, 100, repeats)
            lines.append(f"| {H} | {T} | {gv * 1e3:.1f} | {g * 1e3:.1f} | {gv / g:.2f}x | {gf * 1e3:.1f} |")
        cg = 10 if quick else 30
        lines += ["", f"### Hessian-free: one outer iteration ({cg} CG iterations, gradient batch 500, "
                  "curvature batch 100)", "", "| hidden | T | seconds |", "|---:|---:|---:|"]
        for H, T in sizes:
            lines.append(f"| {H} | {T} | {outer_iteration(H, T, 500, cg, 1 if not quick else 1):.2f} |")
        return "\n".join(lines)
    finally:
        torch.set_num_threads(threads)


if __name__ == "__main__":
    print(main(quick="--quick" in sys.argv))

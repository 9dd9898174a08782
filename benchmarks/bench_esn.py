"""Echo state networks: rnntrain against reservoirpy, and Jaeger's (2001) Mackey-Glass protocol.

Three tables (``main(quick)`` returns them as markdown):

1. reservoirpy's README example on reservoirpy's own ``mackey_glass(2000)``: 100 units,
   spectral radius 1.25, leak 0.3, ridge 1e-5, 100 warm-up steps, teacher-forced one-step
   prediction of the last 20% (the state carried on from training, as ``esn.run`` does).
2. Same data, same hyper-parameters, both libraries: fit time (state collection + readout
   solve; reservoir construction apart) and one-step NRMSE at 500 and 2000 units with 5000
   training steps, and the 84-step free-running NRMSE (teacher-forced over 1000 steps
   first), averaged over test runs. Timed round-robin, median of repeats.
3. Jaeger's protocol: Mackey-Glass tau = 17 squashed by tanh(x - 1), 400 leaky units,
   3000 training steps (first 1000 discarded), 1000 teacher-forced steps then 84
   free-running steps; NRMSE84 = sqrt(mean over runs of the error at step 84 squared /
   var(series)), beside the published figures.

    .venv/bin/python benchmarks/bench_esn.py [--quick]
"""
from __future__ import annotations

import statistics
import sys
import time
from typing import Dict, Tuple

import numpy as np
import torch

from rnntrain.algorithms.esn import ridge_solve
from rnntrain.models.esn import EchoStateNetwork, build_esn
from rnntrain.models.reservoir import ReservoirConfig
from rnntrain.tasks.base import TaskSpec
from rnntrain.tasks.chaotic import mackey_glass

F64 = torch.float64


def _t(a) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a), dtype=F64)


def fit_ridge(model: EchoStateNetwork, u: np.ndarray, y: np.ndarray, warmup: int, ridge: float):
    """Collect states over u (T, F) from zero, drop ``warmup``, solve; returns the final state."""
    with torch.no_grad():
        f, state = model.features(_t(u)[None])  # (1, T, D)
        x = torch.cat([f[0, warmup:], torch.ones(len(u) - warmup, 1, dtype=F64)], 1)
        yy = _t(y)[warmup:]
        w = ridge_solve(x.T @ x, x.T @ yy, ridge)
        model.readout.linear.weight.copy_(w[:-1].T)
        model.readout.linear.bias.copy_(w[-1])
    return state


def esn(units: int, sr: float, lr: float, seed: int = 0, **kw) -> EchoStateNetwork:
    cfg = ReservoirConfig(leak_rate=lr, **kw)
    return build_esn(units, sr, cfg, TaskSpec(1, 1), generator=torch.Generator().manual_seed(seed),
                     dtype=F64)


def nrmse(p, t) -> float:
    return float(np.sqrt(np.mean((np.asarray(p) - np.asarray(t)) ** 2) / np.var(t)))


# ------------------------------------------------------------------ 1. reservoirpy README

def readme_example() -> Tuple[float, float]:
    """(RMSE, R²) of rnntrain on reservoirpy's README protocol and data."""
    from reservoirpy.datasets import mackey_glass as rpy_mg, to_forecasting
    X = rpy_mg(2000)
    x_train, x_test, y_train, y_test = to_forecasting(X, test_size=0.2)
    m = esn(100, 1.25, 0.3)
    state = fit_ridge(m, x_train, y_train, 100, 1e-5)
    p, _ = m.predict(_t(x_test)[None], state)
    p = p[0].numpy()
    rmse = float(np.sqrt(np.mean((p - y_test) ** 2)))
    r2 = 1 - float(np.sum((y_test - p) ** 2) / np.sum((y_test - y_test.mean()) ** 2))
    return rmse, r2


def readme_reservoirpy() -> Tuple[float, float]:
    from reservoirpy.datasets import mackey_glass as rpy_mg, to_forecasting
    from reservoirpy.nodes import Reservoir, Ridge
    from reservoirpy.observables import rmse, rsquare
    X = rpy_mg(2000)
    x_train, x_test, y_train, y_test = to_forecasting(X, test_size=0.2)
    model = Reservoir(100, sr=1.25, lr=0.3, seed=0) >> Ridge(ridge=1e-5)
    model.fit(x_train, y_train, warmup=100)
    p = model.run(x_test)
    return float(rmse(y_test, p)), float(rsquare(y_test, p))


# ------------------------------------------------------------------ 2. head to head

def _ours(units, u, y, test_u, test_y, runs, sr, lr, ridge, warmup) -> Dict[str, float]:
    m = esn(units, sr, lr)
    t0 = time.perf_counter()
    state = fit_ridge(m, u, y, warmup, ridge)
    fit = time.perf_counter() - t0
    p, _ = m.predict(_t(test_u)[None], state)
    ctx = torch.stack([_t(test_u[s:s + 1000]) for s in runs])  # (R, 1000, 1)
    gen = m.generate(ctx, 84)[:, 83, 0].numpy()
    truth = np.array([test_u[s + 1083, 0] for s in runs])
    return {"fit": fit, "nrmse": nrmse(p[0].numpy(), test_y),
            "nrmse84": float(np.sqrt(np.mean((gen - truth) ** 2) / np.var(test_u)))}


def _theirs(units, u, y, test_u, test_y, runs, sr, lr, ridge, warmup) -> Dict[str, float]:
    from reservoirpy.nodes import Reservoir, Ridge
    res, ro = Reservoir(units, sr=sr, lr=lr, seed=0), Ridge(ridge=ridge)
    model = res >> ro
    model.initialize(u[:1], y[:1])  # build the weights outside the timing, as ours
    t0 = time.perf_counter()
    model.fit(u, y, warmup=warmup)
    fit = time.perf_counter() - t0
    p = model.run(test_u)
    gen = []
    for s in runs:  # teacher forcing over 1000 steps, then its output fed back as input
        res.reset()
        out = model.run(test_u[s:s + 1000])[-1:]
        for _ in range(83):
            out = model.run(out)
        gen.append(float(out[0, 0]))
    truth = np.array([test_u[s + 1083, 0] for s in runs])
    return {"fit": fit, "nrmse": nrmse(p, test_y),
            "nrmse84": float(np.sqrt(np.mean((np.array(gen) - truth) ** 2) / np.var(test_u)))}


def head_to_head(quick: bool) -> str:
    try:
        import reservoirpy  # noqa: F401
    except ImportError:
        return "reservoirpy is not installed (pip install -c constraints.txt '.[bench]'): skipped."
    train, n_runs, repeats = 5000, (5 if quick else 20), (1 if quick else 3)
    from reservoirpy.datasets import mackey_glass as rpy_mg
    series = rpy_mg(train + 1 + 1084 + 50 * n_runs + 10)
    u, y = series[:train], series[1:train + 1]
    test_u, test_y = series[train:-1], series[train + 1:]
    runs = [50 * r for r in range(n_runs)]
    hp = dict(sr=1.25, lr=0.3, ridge=1e-5, warmup=100)
    lines = [f"reservoirpy's `mackey_glass` (tau 17), {train} training steps, sr 1.25, leak 0.3, "
             f"ridge 1e-5, 100 warm-up steps, float64, {torch.get_num_threads()} torch threads; fit "
             f"time = state collection + solve (median of {repeats}); one-step NRMSE over the "
             f"{len(test_y)} following steps; NRMSE84 over {n_runs} runs (1000 teacher-forced steps, "
             f"then 84 free-running).", "",
             "| units | library | fit time (s) | one-step NRMSE | NRMSE84 |", "|---|---|---|---|---|"]
    for units in (500, 2000):
        results = {"rnntrain": [], "reservoirpy": []}
        for _ in range(repeats):
            results["rnntrain"].append(_ours(units, u, y, test_u, test_y, runs, **hp))
            results["reservoirpy"].append(_theirs(units, u, y, test_u, test_y, runs, **hp))
        for lib, rs in results.items():
            fit = statistics.median(r["fit"] for r in rs)
            lines.append(f"| {units} | {lib} | {fit:.3f} | {rs[0]['nrmse']:.2e} | {rs[0]['nrmse84']:.2e} |")
    return "\n".join(lines)


# ------------------------------------------------------------------ 3. Jaeger's protocol

JAEGER = dict(hidden=400, sr=1.0, leak=0.5, input_scaling=0.5, bias=0.2, ridge=1e-10, density=0.1)


def jaeger_protocol(train: int = 3000, runs: int = 100, seed: int = 0, hidden: int = 400):
    """NRMSE84 and fit seconds on Mackey-Glass tau 17 (h 0.1, RK4), squashed by tanh(x - 1)."""
    washout = 1000
    z = np.tanh(mackey_glass(train + 1 + 20 * runs + 1084 + 10, seed=seed) - 1.0)  # (T, 1)
    m = esn(hidden, JAEGER["sr"], JAEGER["leak"], seed, input_scaling=JAEGER["input_scaling"],
            input_density=1.0, bias_scaling=JAEGER["bias"], density=JAEGER["density"])
    t0 = time.perf_counter()
    fit_ridge(m, z[:train], z[1:train + 1], washout, JAEGER["ridge"])
    fit = time.perf_counter() - t0
    starts = train + 1 + 20 * np.arange(runs)
    ctx = torch.stack([_t(z[s:s + 1000]) for s in starts])  # (R, 1000, 1) teacher forcing
    out = m.generate(ctx, 84)[:, 83, 0].numpy()  # free-running step 84
    truth = np.array([z[s + 1083, 0] for s in starts])
    return float(np.sqrt(np.mean((out - truth) ** 2) / np.var(z))), fit


def jaeger_table(quick: bool) -> str:
    runs = 20 if quick else 100
    rows = ["Mackey-Glass tau 17 (RK4, h 0.1, sampled every 1), squashed by tanh(x - 1); 400 units "
            f"(leak {JAEGER['leak']}, sr {JAEGER['sr']}, input scaling {JAEGER['input_scaling']}, bias "
            f"{JAEGER['bias']}, density {JAEGER['density']}), ridge {JAEGER['ridge']:g}, first 1000 "
            f"training states discarded; NRMSE84 over {runs} runs.", "",
            "| training steps | published NRMSE84 (Jaeger) | rnntrain NRMSE84 | fit time (s) |",
            "|---|---|---|---|"]
    for train, published in ((3000, "2.8e-4"), (21000, "1.2e-4")):
        if quick and train > 3000:
            continue
        err, fit = jaeger_protocol(train, runs)
        rows.append(f"| {train} | {published} | {err:.2e} | {fit:.2f} |")
    return "\n".join(rows)


def main(quick: bool = False) -> str:
    torch.set_num_threads(1)  # reservoirpy's numpy is timed as it comes; both mostly 1 core here
    parts = []
    try:
        ours = readme_example()
        theirs = readme_reservoirpy()
        parts.append("### reservoirpy's README example\n\n| | RMSE | R² |\n|---|---|---|\n"
                     "| published (README) | 0.0020 | 0.99992 |\n"
                     f"| reservoirpy {__import__('reservoirpy').__version__} here | {theirs[0]:.4f} | {theirs[1]:.5f} |\n"
                     f"| rnntrain | {ours[0]:.4f} | {ours[1]:.5f} |")
    except ImportError:
        parts.append("reservoirpy is not installed: README comparison skipped.")
    parts.append("### Fit time and accuracy against reservoirpy\n\n" + head_to_head(quick))
    parts.append("### Jaeger (2001) Mackey-Glass protocol\n\n" + jaeger_table(quick))
    return "\n\n".join(parts)


if __name__ == "__main__":
    print(main("--quick" in sys.argv))

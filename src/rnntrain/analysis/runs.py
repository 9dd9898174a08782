"""Analyses of a run directory: what ``rnntrain analyze gradients|dynamics RUN_DIR`` calls.

Both work on any run, whatever algorithm trained it: they load the SequenceModel with
``load_run`` and read only its core's single step (and, for gradients, its readout and
the task's loss). Outputs go to ``RUN_DIR/analysis/`` unless ``out_dir`` is given::

    gradients:  gradient_curves.png, gradient_heatmap.png (needs [monitor] records),
                gradient_norm_heatmap.png, gradients.csv, gradients.json
    dynamics:   dynamics_trajectories.png, dynamics_eigenvalues.png,
                dynamics_lyapunov.png, dynamics.json
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Union

import torch

from ..errors import UserError
from . import plots
from .behaviour import classify_behaviour
from .fixed_points import find_fixed_points
from .gradient_flow import (CSV_NAME, history_matrix, model_gradient_flow, probe_batch,
                            read_rows)
from .lyapunov import lyapunov_spectrum
from .step import constant_input, model_step, trajectory

PathLike = Union[str, Path]


def _out(run_path: Path, out_dir: Optional[PathLike]) -> Path:
    out = Path(out_dir) if out_dir is not None else run_path / "analysis"
    out.mkdir(parents=True, exist_ok=True)
    return out


def data_task(loaded):
    """The run's task with its data (the task rebuilt for inference may have none)."""
    from ..training.build import make_task  # local: training imports analysis (monitors)
    try:
        return make_task(loaded.config)
    except UserError:
        return loaded.task


def analyze_gradients(run_dir: PathLike, out_dir: Optional[PathLike] = None, *,
                      batch_size: int = 8, core: Optional[str] = None) -> Dict[str, Any]:
    """Gradient flow of the run's final model on its probe batch (the first ``batch_size``
    validation sequences), plus the heatmaps of the records a ``[monitor]
    gradient_flow_every`` run wrote during training. ``core``: which of the model's cores
    (None: the first; an encoder-decoder's encoder). Returns the JSON summary."""
    from ..training import load_run

    loaded = load_run(run_dir)
    out = _out(loaded.path, out_dir)
    batch = probe_batch(data_task(loaded), batch_size)
    if batch is None:
        raise UserError(f"the task of {loaded.path} has no data to run a batch through; "
                        "make its data file available at the path in config.toml")
    flow = model_gradient_flow(loaded.model, batch.inputs, batch, loaded.task.loss, core)
    log10 = flow.log_sigma / math.log(10)
    files = [plots.plot_gradient_curves(out / "gradient_curves.png", log10, flow.grad_norms,
                                        flow.rate, f"{loaded.path.name}: final model")]
    lines = ["quantity,index,value"]
    lines += [f"log10_sigma,{i},{v:.9g}" for i, v in enumerate(log10.tolist())]
    if flow.grad_norms is not None:
        lines += [f"grad_norm,{i},{v:.9g}" for i, v in enumerate(flow.grad_norms.tolist())]
    lines.append(f"rate,0,{flow.rate:.9g}")
    (out / "gradients.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    records = read_rows(loaded.path / CSV_NAME)
    unit = "round"
    history = {}
    if records:
        rounds, m = history_matrix(records, "log10_sigma")
        files.append(plots.plot_gradient_heatmap(out / "gradient_heatmap.png", rounds, m, unit))
        g_rounds, g = history_matrix(records, "grad_norm")
        if g_rounds:
            files.append(plots.plot_gradient_heatmap(
                out / "gradient_norm_heatmap.png", g_rounds, torch.log10(g.clamp(min=1e-30)), unit,
                "log10 ‖∂L/∂h_k‖ during training (round × step k)"))
        history = {"recorded_rounds": rounds,
                   "rates": [r["value"] for r in records if r["quantity"] == "rate"]}
    summary = {"run": str(loaded.path), "rate": flow.rate, "regime": flow.regime,
               "steps": int(log10.numel() - 1), "batch": len(batch),
               "log10_sigma_at_max_lag": float(log10[-1]),
               "grad_norm_first_over_last": (float(flow.grad_norms[0] / flow.grad_norms[-1])
                                             if flow.grad_norms is not None and flow.grad_norms[-1] > 0
                                             else None),
               "history": history, "files": [p.name for p in files] + ["gradients.csv"],
               "note": None if records else (
                   "no training records: train with [monitor] gradient_flow_every = N "
                   "for the heatmap over rounds")}
    (out / "gradients.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    return summary


def core_input(ms, task_spec, values: Optional[Sequence[float]] = None,
               token: Optional[int] = None) -> torch.Tensor:
    """The constant input of the analysed core (I,): zeros (autonomous) by default, each step
    one median gap long where the last input is the step's Δt (``time_input``; Δt = 0 would
    freeze a continuous-time cell); ``values`` (task features) or a ``token`` id go through
    the model's encoder (first core only)."""
    model = ms.model
    p = next(model.parameters())
    if token is not None:
        if not task_spec.tokens or not 0 <= token < task_spec.input_size:
            raise UserError(f"--token {token}: this model reads "
                            f"{'token ids 0..' + str(task_spec.input_size - 1) if task_spec.tokens else 'features, not tokens'}; "
                            "use a valid id or --input")
        with torch.no_grad():
            return ms.encode(torch.tensor([[token]], device=p.device))[0, 0]
    if values is not None:
        if task_spec.tokens or len(values) != task_spec.input_size:
            raise UserError(f"--input needs {task_spec.input_size} comma-separated numbers "
                            f"(the task's input features), got {len(values)}"
                            if not task_spec.tokens else "--input is for feature inputs; this "
                            "model reads tokens: use --token ID")
        x = torch.tensor([[list(values)]], dtype=p.dtype, device=p.device)
        with torch.no_grad():
            return ms.encode(x)[0, 0]
    if task_spec.time_input:
        return core_input(ms, task_spec, [0.0] * (task_spec.input_size - 1) + [1.0])
    return torch.zeros(ms.input_size, dtype=p.dtype, device=p.device)


def analyze_dynamics(run_dir: PathLike, out_dir: Optional[PathLike] = None, *,
                     values: Optional[Sequence[float]] = None, token: Optional[int] = None,
                     starts: int = 16, steps: int = 300, spread: float = 0.5,
                     exponents: Optional[int] = None, lyapunov_steps: int = 1000,
                     seed: int = 0, core: Optional[str] = None) -> Dict[str, Any]:
    """Dynamics of the run's network under a constant input (zeros: autonomous):
    trajectories from ``starts`` initial states (zero and N(0, spread²)), fixed and slow
    points from states on them, the Lyapunov spectrum (``exponents`` largest, all by
    default) and the behaviour. ``core``: one of the model's cores; None: every core (an
    encoder-decoder's files then carry the core's name, dynamics_encoder_*.png, and the
    summary has one entry per core under "cores"). Returns the JSON summary."""
    from ..training import load_run

    loaded = load_run(run_dir)
    out = _out(loaded.path, out_dir)
    names = [core] if core is not None else list(loaded.model.cores())
    options = dict(values=values, token=token, starts=starts, steps=steps, spread=spread,
                   exponents=exponents, lyapunov_steps=lyapunov_steps, seed=seed)
    if len(names) == 1:
        summary = _core_dynamics(loaded, out, names[0], "dynamics", **options)
    else:
        parts = {n: _core_dynamics(loaded, out, n, f"dynamics_{n}", **options) for n in names}
        first = parts[names[0]]
        summary = {**first, "cores": parts, "files": [f for p in parts.values() for f in p["files"]]}
    (out / "dynamics.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    return summary


def _core_dynamics(loaded, out: Path, name: str, prefix: str, *, values, token, starts: int,
                   steps: int, spread: float, exponents, lyapunov_steps: int, seed: int) -> Dict[str, Any]:
    model = loaded.model
    ms = model_step(model, name)
    u = core_input(ms, loaded.task.spec, values, token)
    g = torch.Generator().manual_seed(seed)
    dtype = u.dtype
    h0 = torch.randn(starts, ms.dim, generator=g, dtype=torch.float64).to(dtype) * spread
    h0[0] = 0
    with torch.no_grad():
        traj = trajectory(ms, h0, constant_input(u, steps, starts))  # (B, T+1, D)
    flat = traj.reshape(-1, ms.dim)
    pick = torch.randperm(flat.shape[0], generator=g)[:64]
    seeds = flat[pick] + 0.01 * torch.randn(len(pick), ms.dim, generator=g, dtype=torch.float64).to(dtype)
    points = find_fixed_points(ms, u, seeds)
    behaviour = classify_behaviour(ms, ms.zero_state()[0], u)
    # the spectrum of the attractor the behaviour describes (from the zero state itself, an
    # unstable fixed point would give exponents of a point nothing converges to)
    spectrum = lyapunov_spectrum(ms, behaviour.trajectory[-1], u, lyapunov_steps, transient=200, k=exponents)
    title = loaded.path.name + ("" if prefix == "dynamics" else f" ({name})")
    files = [plots.plot_trajectories(out / f"{prefix}_trajectories.png", traj, points,
                                     f"{title}: {loaded.config.model.cell}, {behaviour.kind}"),
             plots.plot_eigenvalues(out / f"{prefix}_eigenvalues.png", points),
             plots.plot_lyapunov(out / f"{prefix}_lyapunov.png", spectrum.exponents, spectrum.running_max)]
    return {"run": str(loaded.path), "core": name, "cell": loaded.config.model.cell, "state_dim": ms.dim,
            "input": ("token " + str(token)) if token is not None else (
                list(values) if values else "zeros, dt = 1" if loaded.task.spec.time_input else "zeros"),
            "behaviour": behaviour.summary(),
            "lyapunov": {"largest": spectrum.largest, "exponents": spectrum.exponents.tolist(),
                         "steps": lyapunov_steps},
            "fixed_points": [p.summary() for p in points],
            "counts": {k: sum(p.kind == k for p in points) for k in ("stable", "saddle", "unstable", "marginal")},
            "files": [p.name for p in files]}

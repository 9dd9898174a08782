r"""Gradient checker: an online algorithm's gradient on one sequence against BPTT autograd
and central finite differences, in float64.

The check builds a small SequenceModel (cell, sizes, layers) with a linear per-step
readout and a random sequence with random targets (N streams, T steps), and compares, per
parameter tensor, the gradient of the mean per-step MSE computed three ways:

- the algorithm's own :meth:`OnlineAlgorithm.run_batch` with updates off (the code path
  of training), weights fixed for the whole sequence;
- autograd through the unrolled network (BPTT);
- central differences ``(L(θ + h e_i) - L(θ - h e_i)) / 2h`` for every entry.

Errors per tensor: max absolute error, and relative error = max abs error / max |reference|.
For UORO (an unbiased estimate) the mean of ``samples`` independent estimates is compared
with the exact gradient in units of its standard error: ``z = ‖mean − exact‖ / sqrt(Σ se²)``
per tensor (≈ 1 for an unbiased estimate; a biased one grows like sqrt(samples)).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

import torch

from ..errors import UserError
from ..optim import OptimConfig
from ..tasks.base import Batch, Task, TaskSpec
from .base import ALGORITHMS, Context

EXACT_TOL = 1e-8  # relative error allowed against BPTT autograd
FD_TOL = 1e-6  # relative error allowed against central differences (their own error ~1e-9)
Z_TOL = 3.0  # standard errors allowed for a stochastic estimate (UORO)
STOCHASTIC = ("uoro",)


class _SequenceTask(Task):
    """One in-memory batch with per-step MSE (all a gradient check needs)."""

    name = "gradcheck"

    def __init__(self, spec: TaskSpec) -> None:
        self.spec = spec

    def batches(self, split, batch_size, *, generator=None):
        return iter(())

    def loss(self, outputs, batch):
        return torch.nn.functional.mse_loss(outputs, batch.targets)

    def evaluate(self, model, split):
        return {}

    def report(self, model, out_dir):
        return {}


@dataclass
class Row:
    name: str
    numel: int
    bptt_abs: float
    bptt_rel: float
    fd_abs: float
    fd_rel: float
    z: Optional[float] = None  # stochastic estimates only


@dataclass
class GradcheckResult:
    algorithm: str
    cell: str
    rows: List[Row] = field(default_factory=list)
    samples: int = 1
    ok: bool = True

    def table(self) -> str:
        head = "| parameter | size | max abs err vs BPTT | rel err vs BPTT | max abs err vs FD | rel err vs FD |"
        sep = "|---|---:|---:|---:|---:|---:|"
        if self.samples > 1:
            head += " z (std. errors) |"
            sep += "---:|"
        lines = [head, sep]
        for r in self.rows:
            line = (f"| {r.name} | {r.numel} | {r.bptt_abs:.2e} | {r.bptt_rel:.2e} | "
                    f"{r.fd_abs:.2e} | {r.fd_rel:.2e} |")
            if self.samples > 1:
                line += f" {'exact' if r.z is None else f'{r.z:.2f}'} |"
            lines.append(line)
        verdict = "PASS" if self.ok else "FAIL"
        crit = (f"mean of {self.samples} samples within {Z_TOL:g} standard errors" if self.samples > 1
                else f"relative error <= {EXACT_TOL:g} vs BPTT and <= {FD_TOL:g} vs finite differences")
        return "\n".join(lines) + f"\n{verdict}: {self.algorithm} on {self.cell} ({crit})"


def _rel(err: torch.Tensor, ref: torch.Tensor) -> float:
    return float(err.abs().max() / ref.abs().max().clamp_min(1e-300)) if ref.numel() else 0.0


def gradcheck(algorithm: str, cell: str = "rnn", *, input_size: int = 3, hidden: int = 4,
              layers: int = 1, steps: int = 8, streams: int = 2, samples: int = 2000,
              fd_step: float = 1e-6, seed: int = 0, **model) -> GradcheckResult:
    """Check ``algorithm``'s gradient for ``cell`` (see the module docstring); returns the table.
    ``model``: further ModelConfig keys (e.g. ``proj=2``, ``ct_method="rk4"``)."""
    from ..models import ModelConfig, build_model  # models import the core only

    if algorithm not in ALGORITHMS or not hasattr(ALGORITHMS[algorithm], "run_batch"):
        online = sorted(k for k, a in ALGORITHMS.items() if hasattr(a, "run_batch"))
        raise UserError(f"gradcheck checks online gradient algorithms: choose one of "
                        f"{', '.join(online)}, got '{algorithm}'")
    stochastic = algorithm in STOCHASTIC
    g = torch.Generator().manual_seed(seed)
    spec = TaskSpec(input_size=input_size, output_size=2, per_step=True)
    model_config = ModelConfig(cell=cell, hidden=hidden, layers=layers, **model)
    refusal = ALGORITHMS[algorithm].why_not(spec, model_config, ALGORITHMS[algorithm].Options())
    if refusal:
        raise UserError(refusal)
    model = build_model(model_config, spec,
                        generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    task = _SequenceTask(spec)
    x = torch.randn(streams, steps, input_size, generator=g, dtype=torch.float64)
    y = torch.randn(streams, steps, 2, generator=g, dtype=torch.float64)
    names = [n for n, _ in model.named_parameters()]
    params = list(model.parameters())

    # BPTT autograd: the mean per-step loss (every step's MSE averaged over the steps)
    loss_of = lambda: task.loss(model(x)[0], Batch(x, y))
    exact = torch.autograd.grad(loss_of(), params)
    # central finite differences, entry by entry
    fd = []
    with torch.no_grad():
        for p in params:
            d = torch.zeros_like(p).reshape(-1)
            flat = p.view(-1)
            for i in range(flat.numel()):
                old = float(flat[i])
                flat[i] = old + fd_step
                up = float(loss_of())
                flat[i] = old - fd_step
                down = float(loss_of())
                flat[i] = old
                d[i] = (up - down) / (2 * fd_step)
            fd.append(d.view_as(p))

    # the algorithm's gradient, by its own streaming code with updates off
    R = samples if stochastic else 1
    ctx = Context(model, task, OptimConfig(name="sgd", lr=1e-3, clip=0.0), 1, streams * R,
                  torch.Generator().manual_seed(seed + 1))
    algo = ALGORITHMS[algorithm](ctx, ALGORITHMS[algorithm].Options())
    for p in params:
        p.grad = None
    if not stochastic:
        algo.run_batch(Batch(x, y), update=False)
        got = [algo.grad_of(p) for p in params]
        samples_of = None
    else:
        per_sample = algo.per_stream_gradients(Batch(x.repeat(R, 1, 1), y.repeat(R, 1, 1)))
        per_sample = [s.reshape(R, streams, *s.shape[1:]).mean(1) for s in per_sample]  # (R, ...)
        got = [s.mean(0) for s in per_sample]
        samples_of = per_sample

    result = GradcheckResult(algorithm, f"{cell} (n_in={input_size}, n={hidden}, layers={layers}, "
                                        f"T={steps}, N={streams})", samples=R)
    for k, name in enumerate(names):
        e, f, a = exact[k], fd[k], got[k]
        row = Row(name, e.numel(), float((a - e).abs().max()), _rel(a - e, e),
                  float((a - f).abs().max()), _rel(a - f, f))
        if stochastic:
            se2 = float((samples_of[k].var(0) / R).sum())
            if se2 > 1e-30:  # a stochastic part: z-score of the mean
                row.z = float((a - e).norm()) / se2 ** 0.5
                result.ok &= row.z <= Z_TOL
            else:  # exact part (the readout's immediate gradient)
                result.ok &= row.bptt_rel <= EXACT_TOL
        else:
            result.ok &= row.bptt_rel <= EXACT_TOL and row.fd_rel <= FD_TOL
        result.rows.append(row)
    return result

r"""Gradient flow through time: how much the loss still hears from step k, and why.

Backpropagation through time (the reference's BPTT equations) sends the error back by

.. math::
    \frac{\partial L}{\partial h_k} = \frac{\partial L}{\partial h_k}\Big|_{\text{direct}}
        + J_{k+1}^\top \frac{\partial L}{\partial h_{k+1}}, \qquad
    J_t = \frac{\partial h_t}{\partial h_{t-1}} = \frac{\partial F}{\partial h}(h_{t-1}, x_t),

so the influence of step k on step T is the Jacobian product
:math:`\partial h_T/\partial h_k = J_T J_{T-1} \cdots J_{k+1}`. Its largest singular
value against the lag T - k decays or grows roughly exponentially (Bengio, Simard &
Frasconi 1994; Pascanu, Mikolov & Bengio 2013): the fitted per-step factor ``rate``
says vanishing (< 1) or exploding (> 1).

Computed here, for a step function and a batch (:mod:`.step`):

- ``grad_norms[k]`` = ‖∂L/∂h_k‖ for k = 0..L (norm over the batch's (N, D) state at step
  k; L is the task's mean loss), by autograd through the unrolled single steps;
- ``log_sigma[lag]`` = mean over the batch's sequences of ln σ_max(∂h_T/∂h_{T-lag}),
  T the last step, every J_t from ``batched_jacobians``; the running product is
  renormalised at every step, so lags of thousands of steps neither underflow nor overflow;
- ``rate`` = exp(slope) of the least-squares line through (lag, log_sigma), lags >= 1.
"""
from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional

import torch
from torch import Tensor
from torch.func import vmap

from .step import StepFn, batched_jacobians, model_step

LossOfStates = Callable[[Tensor], Tensor]  # states (N, L+1, D) -> scalar loss


@dataclass
class GradientFlow:
    """Gradient-flow statistics of one batch (see the module docstring)."""

    log_sigma: Tensor  # (T+1,) mean ln σ_max(∂h_T/∂h_{T-lag}), lag = 0..T
    rate: float  # fitted per-step factor of σ_max: < 1 vanishing, > 1 exploding
    grad_norms: Optional[Tensor] = None  # (L+1,) ‖∂L/∂h_k‖, k = 0..L (None without a loss)

    @property
    def lags(self) -> Tensor:
        return torch.arange(self.log_sigma.numel())

    @property
    def sigma(self) -> Tensor:
        return self.log_sigma.exp()

    @property
    def regime(self) -> str:
        """"vanishing", "exploding" or "neutral" (rate within 1 ± 1e-3 per step)."""
        if abs(self.rate - 1.0) <= 1e-3:
            return "neutral"
        return "vanishing" if self.rate < 1 else "exploding"


def fit_rate(log_sigma: Tensor) -> float:
    """exp(slope) of the least-squares line ln σ = a + lag · ln r over lags >= 1
    (lag 0 is the identity and says nothing); 1.0 when fewer than two lags."""
    y = log_sigma[1:].double()
    if y.numel() < 2:
        return float(log_sigma[-1].exp()) if y.numel() == 1 else 1.0
    x = torch.arange(1, y.numel() + 1, dtype=torch.float64)
    xc = x - x.mean()
    return math.exp(float((xc * (y - y.mean())).sum() / (xc * xc).sum()))


@torch.no_grad()
def jacobian_product_log_norms(step: StepFn, hs: Tensor, xs: Tensor) -> Tensor:
    """ln σ_max(∂h_T/∂h_{T-lag}) for lag = 0..T, per sequence.

    hs (N, T+1, D) states h_0..h_T; xs (N, T, I) inputs x_1..x_T -> (N, T+1).
    The product P = J_T ... J_{k+1} is grown from the right one Jacobian at a time and
    divided by its spectral norm after every step (the norms are summed in log space).
    """
    N, T1, D = hs.shape
    batched = vmap(step)
    P = torch.eye(D, dtype=hs.dtype, device=hs.device).expand(N, D, D)
    out = [torch.zeros(N, dtype=torch.float64, device=hs.device)]
    log_scale = torch.zeros(N, dtype=torch.float64, device=hs.device)
    for k in range(T1 - 1, 0, -1):  # J_k = ∂h_k/∂h_{k-1} at (h_{k-1}, x_k)
        P = P @ batched_jacobians(batched, hs[:, k - 1], xs[:, k - 1])  # (N, D, D)
        s = torch.linalg.matrix_norm(P, ord=2)  # (N,)
        out.append(log_scale + torch.log(s.double()))
        # renormalise (zero norm: the influence is exactly gone; keep -inf, avoid 0/0)
        P = P / torch.where(s > 0, s, torch.ones_like(s))[:, None, None]
        log_scale = log_scale + torch.log(torch.where(s > 0, s, torch.ones_like(s)).double())
    return torch.stack(out, dim=1)  # (N, T+1)


def gradient_flow(step: StepFn, h0: Tensor, xs: Tensor,
                  loss_of_states: Optional[LossOfStates] = None) -> GradientFlow:
    """Gradient-flow statistics of a generic step function on a batch.

    h0 (N, D) initial states, xs (N, T, I) inputs; ``loss_of_states`` maps the states
    (N, T+1, D) (h_0..h_T) to a scalar loss, for ``grad_norms``.
    """
    f = vmap(step)
    h = h0.detach().requires_grad_(loss_of_states is not None)
    hs: List[Tensor] = [h]
    with torch.set_grad_enabled(loss_of_states is not None):
        for t in range(xs.shape[1]):
            h = f(h, xs[:, t])
            hs.append(h)
        grad_norms = None
        if loss_of_states is not None:
            loss = loss_of_states(torch.stack(hs, dim=1))
            grads = torch.autograd.grad(loss, hs, allow_unused=True)
            grad_norms = torch.stack([g.norm() if g is not None else h0.new_zeros(())
                                      for g in grads]).detach()
    states = torch.stack([s.detach() for s in hs], dim=1)  # (N, T+1, D)
    log_sigma = jacobian_product_log_norms(step, states, xs.detach()).mean(0)
    return GradientFlow(log_sigma.float(), fit_rate(log_sigma), grad_norms)


def model_gradient_flow(model, inputs: Tensor, targets, loss_fn: Callable[[Tensor, object], Tensor],
                        core: Optional[str] = None) -> GradientFlow:
    """:func:`gradient_flow` of a model's core (``core``: a name of ``model.cores()``, None:
    the first, the one reading the inputs) on a batch: inputs (N, L, F) or (N, L) ids,
    ``targets`` what ``loss_fn`` (the task's loss) takes with the outputs: the batch (an
    encoder-decoder's teacher-forced decoder inputs come from it). Zero initial state; the
    core's state of every layer (LSTM: h and c) is the analysed state. The batch is read over
    its whole padded length (pass equal-length batches)."""
    ms = model_step(model, core)
    with torch.no_grad():
        xs = ms.encode(inputs)  # (N, L, I)
    h0 = ms.zero_state(xs.shape[0])
    decoder = getattr(targets, "decoder", None)

    def loss_of_states(hs: Tensor) -> Tensor:
        return loss_fn(model.read_core(ms.core_name, hs[:, 1:], decoder=decoder), targets)

    return gradient_flow(ms, h0, xs, loss_of_states)


def probe_batch(task, size: int = 8):
    """A fixed batch for monitoring: ``size`` sequences of the val split (the train split, in a
    seeded order, when val is empty), the first batch of the longest ones (labelled tasks hand
    out val in order of length; the shortest say little about gradients over time). None
    when the task has no data."""
    for split, gen in (("val", None), ("train", torch.Generator().manual_seed(0))):
        try:
            batches = [b for b in task.batches(split, size, generator=gen) if len(b)]
        except (AttributeError, TypeError, KeyError):  # a task rebuilt for inference only
            batches = []
        if batches:
            longest = max(b.steps for b in batches)
            return next(b for b in batches if b.steps == longest)
    return None


# ---------------------------------------------------------------- records and the monitor

CSV_NAME = "gradient_flow.csv"
FIELDS = ("round", "quantity", "index", "value")  # long format: one number per row


def flow_rows(round_: int, flow: GradientFlow) -> List[Dict]:
    """A GradientFlow as CSV rows: quantity in {log10_sigma (index = lag),
    grad_norm (index = step k), rate (index 0)}."""
    rows = [{"round": round_, "quantity": "log10_sigma", "index": i, "value": float(v) / math.log(10)}
            for i, v in enumerate(flow.log_sigma.tolist())]
    if flow.grad_norms is not None:
        rows += [{"round": round_, "quantity": "grad_norm", "index": i, "value": float(v)}
                 for i, v in enumerate(flow.grad_norms.tolist())]
    rows.append({"round": round_, "quantity": "rate", "index": 0, "value": flow.rate})
    return rows


def write_rows(path: Path, rows: List[Dict]) -> None:
    from ..training.checkpoint import atomic_write_text  # local: training imports analysis
    import io
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=FIELDS, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(Path(path), buf.getvalue())


def read_rows(path: Path) -> List[Dict]:
    if not Path(path).is_file():
        return []
    with open(path, newline="", encoding="utf-8") as f:
        return [{"round": int(r["round"]), "quantity": r["quantity"], "index": int(r["index"]),
                 "value": float(r["value"])} for r in csv.DictReader(f)]


def history_matrix(rows: List[Dict], quantity: str = "log10_sigma"):
    """(rounds list, matrix (R, max index + 1) with NaN where a round has no value)."""
    rounds = sorted({r["round"] for r in rows if r["quantity"] == quantity})
    if not rounds:
        return [], torch.zeros(0, 0)
    width = 1 + max(r["index"] for r in rows if r["quantity"] == quantity)
    m = torch.full((len(rounds), width), float("nan"))
    pos = {r: i for i, r in enumerate(rounds)}
    for r in rows:
        if r["quantity"] == quantity:
            m[pos[r["round"]], r["index"]] = r["value"]
    return rounds, m


@dataclass
class GradientFlowMonitor:
    """Training callback ``(round, row)``: every ``every`` rounds, the gradient flow of the
    model on a fixed probe batch, kept in ``records`` and (with ``out_dir``) rewritten to
    ``out_dir/gradient_flow.csv``. Works for any algorithm: it only reads the model."""

    model: torch.nn.Module
    task: object
    every: int = 1
    out_dir: Optional[Path] = None
    batch_size: int = 8
    records: List[Dict] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.path = Path(self.out_dir) / CSV_NAME if self.out_dir is not None else None
        self._batch, self._loaded = None, self.path is None

    def __call__(self, round_: int, row: Dict) -> None:
        if round_ % self.every != 0:
            return
        if not self._loaded:  # read at the first record, after the run directory was (re)created
            self.records, self._loaded = read_rows(self.path) + self.records, True
        if self._batch is None:
            self._batch = probe_batch(self.task, self.batch_size)
            if self._batch is None:
                return
        was_training = self.model.training
        try:
            flow = model_gradient_flow(self.model, self._batch.inputs, self._batch, self.task.loss)
        finally:
            self.model.train(was_training)
        self.records = [r for r in self.records if r["round"] < round_] + flow_rows(round_, flow)
        if self.path is not None:
            write_rows(self.path, self.records)

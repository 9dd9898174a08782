r"""Echo state network readout: ridge regression in closed form, or recursive least squares.

The reservoir is fixed (Jaeger 2001, GMD Report 148); only the linear readout
:math:`y_t = W_{out} f_t + c` is learnt, from the readout features :math:`f_t` (the
reservoir states, optionally with the inputs) collected over the training split:

- **ridge** (one round, unit "fit"): with :math:`X` = the features with a column of ones
  appended (T, D+1) and :math:`Y` the targets (T, O),

  .. math::  W = (X^\top X + \lambda \tilde I)^{-1} X^\top Y,\qquad \tilde I = \mathrm{diag}(1,\dots,1,0)

  (Tikhonov regularisation of the weights, not the bias; Lukoševičius 2012, "A practical
  guide to applying echo state networks", eq. 9), solved by a Cholesky factorisation of
  the normal equations in float64, never by an explicit inverse; when the factorisation
  fails (λ = 0 and rank-deficient states) by a least-squares solve on X itself.
  :math:`X^\top X` and :math:`X^\top Y` are accumulated batch by batch, so memory is
  O(D^2) whatever the length.
- **rls** (one pass over the data per round): recursive least squares with forgetting
  factor μ (Haykin, "Adaptive Filter Theory", 4th ed., Table 9.1):
  :math:`k = P f / (\mu + f^\top P f)`, :math:`W \leftarrow W + k (y - W^\top f)^\top`,
  :math:`P \leftarrow (P - k f^\top P) / \mu`, from :math:`P_0 = I/\delta`, W_0 = 0.

Where the features come from: the task's continuous teacher-forced stream of the training
split (:meth:`rnntrain.tasks.base.Task.stream`), with the first ``washout`` steps (the
initial transient) discarded; tasks without one hand out batches, and then every window
is read from the zero state (many-to-one: its last step; many-to-many: every step after
``washout``). Token targets are regressed as one-hot vectors.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Iterator, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from ..config.schema import check
from ..errors import UserError
from ..models.readouts import last_valid
from .base import Algorithm, Context, StepCallback, register

SOLVERS = ("ridge", "rls")


@dataclass(frozen=True)
class ESNOptions:
    solver: str = "ridge"  # ridge: closed form in one round | rls: recursive least squares, a pass per round
    ridge: float = 1e-6  # λ, the Tikhonov penalty on W_out (reservoirpy's README uses 1e-5)
    washout: int = 100  # initial steps of a stream (or of a per-step sequence) whose states are dropped
    state_noise: float = 0.0  # std of Gaussian noise added to the collected features (a regulariser)
    forgetting: float = 1.0  # rls: forgetting factor μ in (0, 1]; 1 = plain least squares
    rls_delta: float = 1e-2  # rls: P_0 = I / delta (small delta: a weak prior on W = 0)

    def __post_init__(self) -> None:
        check(self.solver in SOLVERS, f"unknown esn solver '{self.solver}': choose ridge or rls")
        check(self.ridge >= 0, f"ridge must be >= 0, got {self.ridge}")
        check(self.washout >= 0, f"washout must be >= 0 steps, got {self.washout}")
        check(self.state_noise >= 0, f"state_noise must be >= 0, got {self.state_noise}")
        check(0 < self.forgetting <= 1, f"forgetting must be in (0, 1], got {self.forgetting}")
        check(self.rls_delta > 0, f"rls_delta must be > 0, got {self.rls_delta}")


def ridge_solve(xtx: Tensor, xty: Tensor, ridge: float, x: Optional[Tensor] = None,
                y: Optional[Tensor] = None) -> Tensor:
    """W (D+1, O) minimising ||X W - Y||^2 + ridge ||W[:-1]||^2 from X^T X, X^T Y (float64).

    Cholesky on the regularised normal equations; if that fails (singular, e.g. ridge = 0),
    ``torch.linalg.lstsq`` on X, Y when given, else on the normal equations."""
    a = xtx.clone()
    idx = torch.arange(a.shape[0] - 1)
    a[idx, idx] += ridge  # not the bias row
    chol, info = torch.linalg.cholesky_ex(a)
    if int(info) == 0:
        return torch.cholesky_solve(xty, chol)
    if x is not None and y is not None:
        return torch.linalg.lstsq(x, y, driver="gelsd").solution
    return torch.linalg.lstsq(a, xty, driver="gelsd").solution


@register
class ESN(Algorithm):
    """Fits an :class:`rnntrain.models.esn.EchoStateNetwork`'s readout; see the module doc."""

    name = "esn"
    unit = "fit"
    Options = ESNOptions

    @classmethod
    def refusal(cls, spec, model, options) -> Optional[str]:
        if not spec.aligned or spec.decoder:
            return ("the esn algorithm fits a linear readout to targets at given steps; this task's "
                    "labels are not aligned with the steps (CTC, seq2seq): use --algorithm bptt")
        if spec.distribution:
            return ("the esn algorithm fits its readout by least squares; a probabilistic head's "
                    "loss is a likelihood: use --set task.head=point, or --algorithm bptt")
        if not model.fixed_reservoir:
            return "the esn algorithm fits an echo state network's readout: use --cell esn (model.cell = \"esn\")"
        return None

    def __init__(self, ctx: Context, options: ESNOptions) -> None:
        super().__init__(ctx, options)
        model = ctx.model
        D = model.feature_size + 1  # features and the bias column
        O = model.output_size
        self.rounds = 0
        if options.solver == "ridge":
            self.stats = {"xtx": torch.zeros(D, D, dtype=torch.float64),
                          "xty": torch.zeros(D, O, dtype=torch.float64),
                          "yty": torch.zeros((), dtype=torch.float64), "count": 0}
        else:
            self.stats = {"P": torch.eye(D, dtype=torch.float64) / options.rls_delta,
                          "W": torch.zeros(D, O, dtype=torch.float64), "sse": 0.0, "count": 0}

    # -- data -------------------------------------------------------------------------------
    def _pairs(self) -> Iterator[Tuple[Tensor, Tensor]]:
        """(features (n, D) float64 with a ones column, targets (n, O) float64) chunks."""
        model, task, wash = self.ctx.model, self.ctx.task, self.options.washout
        O = model.output_size
        model.eval()
        with torch.no_grad():
            stream = task.stream("train")
            if stream is not None:
                feats, _ = model.features(stream.inputs)  # (1, T, D)
                self.ctx.work.add(feats.shape[1])
                if feats.shape[1] <= wash:
                    raise UserError(f"the training stream has {feats.shape[1]} steps but washout "
                                    f"drops {wash}: use a smaller algorithm.washout or more data")
                yield self._rows(feats[0, wash:], stream.targets[0, wash:], O)
                return
            state = None
            for batch in task.batches("train", self.ctx.batch_size, generator=self.ctx.generator):
                if not batch.continues:
                    state = None
                fresh = state is None
                feats, state = model.features(batch.inputs, state, batch.lengths)  # (N, L, D)
                self.ctx.work.add(batch.work_steps)
                if model.per_step:  # every valid step after the washout is a row
                    # (labelled sequences, which carry lengths, start from the zero state by
                    # definition: no washout for them)
                    skip = wash if fresh and batch.lengths is None else 0
                    keep = batch.mask[:, skip:]  # (N, L - skip)
                    if bool(keep.any()):
                        yield self._rows(feats[:, skip:][keep], batch.targets[:, skip:][keep], O)
                else:  # one row per sequence: its state at its last valid step
                    yield self._rows(last_valid(feats, batch.lengths), batch.targets, O)
                    state = None  # windows are independent

    def _rows(self, x: Tensor, y: Tensor, O: int) -> Tuple[Tensor, Tensor]:
        x = x.double()
        if self.options.state_noise > 0:
            noise = torch.randn(x.shape, generator=self.ctx.generator, dtype=torch.float64)
            x = x + self.options.state_noise * noise.to(x.device)
        if not y.is_floating_point():  # token targets: least-squares on one-hot vectors
            y = F.one_hot(y, O)
        ones = torch.ones(x.shape[0], 1, dtype=torch.float64, device=x.device)
        return torch.cat([x, ones], dim=1).cpu(), y.double().reshape(x.shape[0], -1).cpu()

    # -- rounds -----------------------------------------------------------------------------
    def run_round(self, on_step: Optional[StepCallback] = None) -> Dict[str, float]:
        if self.options.solver == "ridge":
            loss = self._ridge_round()
        else:
            loss = self._rls_round()
        self.rounds += 1
        if on_step is not None:
            on_step(loss)
        return {"loss": loss, "samples": float(self.stats["count"])}

    def _ridge_round(self) -> float:
        s = self.stats
        if s["count"] == 0:  # statistics survive a resume: never collect twice
            for x, y in self._pairs():
                s["xtx"] += x.T @ x
                s["xty"] += x.T @ y
                s["yty"] += (y * y).sum()
                s["count"] += x.shape[0]
            if s["count"] == 0:
                raise UserError("the training split gave no states to fit the readout on; "
                                "use more data or a smaller algorithm.washout")
        w = ridge_solve(s["xtx"], s["xty"], self.options.ridge)
        self._write(w)
        # training MSE from the statistics: (y'y - 2 tr(W'X'Y) + tr(W'X'XW)) / (n O)
        sse = s["yty"] - 2 * (w * s["xty"]).sum() + (w * (s["xtx"] @ w)).sum()
        return float(sse.clamp_min(0)) / (s["count"] * w.shape[1])

    def _rls_round(self) -> float:
        s, mu = self.stats, self.options.forgetting
        P, W = s["P"], s["W"]
        sse, n = 0.0, 0
        for x, y in self._pairs():
            for f, t in zip(x, y):  # one sample at a time: (D,), (O,)
                pf = P @ f  # (D,)
                k = pf / (mu + f @ pf)
                e = t - f @ W  # (O,) a-priori error
                W += torch.outer(k, e)
                P -= torch.outer(k, pf)
                P /= mu
                sse += float((e * e).sum())
                n += 1
        s["count"] += n
        self._write(W)
        return sse / max(n * W.shape[1], 1)  # a-priori (online) MSE of this pass

    def _write(self, w: Tensor) -> None:
        self.ctx.model.fit_readout(w[:-1].T, w[-1])

    def stop_reason(self) -> Optional[str]:
        if self.options.solver == "ridge" and self.rounds >= 1:
            return "closed-form readout fitted (ridge regression needs one round)"
        return None

    # -- state ------------------------------------------------------------------------------
    def state_dict(self) -> Dict[str, Any]:
        return {"rounds": self.rounds, **{k: (v.clone() if isinstance(v, Tensor) else v)
                                          for k, v in self.stats.items()}}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.rounds = int(state["rounds"])
        for k in self.stats:
            v = state[k]
            self.stats[k] = v.clone() if isinstance(v, Tensor) else v

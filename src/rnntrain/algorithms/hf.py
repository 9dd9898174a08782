r"""Hessian-free optimisation (Martens 2010; Martens & Sutskever 2011) for any model of the core.

Each outer iteration takes ``batches_per_step`` batches of the task as its minibatch (one
by default; the chunks may differ in sequence length, and every quantity below is the
mean over all their sequences). At parameters :math:`\theta` with
gradient :math:`g` (on the whole minibatch) it minimises the damped quadratic model

.. math::
    q(p) = g^\top p + \tfrac12 p^\top \big(G + \lambda\mu\, S + \lambda I\big) p

by conjugate gradient (CG), where, on a smaller *curvature* minibatch (the first
``curvature_fraction`` of the sequences of every chunk; Martens 2010 sec. 4.3),

- :math:`G = J^\top H_L J` is the generalised Gauss-Newton matrix (Schraudolph 2002) of
  the loss :math:`L` composed with the outputs :math:`z(\theta)`: :math:`J = \partial z /
  \partial\theta`, :math:`H_L = \partial^2 L / \partial z^2` (PSD for MSE and softmax
  cross-entropy). :math:`Gv` costs a forward-mode pass (:math:`Jv`, here as the kept
  backward pass differentiated once more: :class:`Curvature`), a product with :math:`H_L`
  on the outputs only, and one reverse-mode pass (:math:`J^\top u`).
- :math:`S = J_h^\top J_h / (N L)` is *structural damping* (M&S 2011 sec. 3.2): the
  Gauss-Newton matrix of the penalty :math:`\tfrac{1}{2NL}\sum\|h_t(\theta+p) -
  h_t(\theta)\|^2` on the change of the hidden states, weighted by :math:`\lambda\mu`.
- :math:`\lambda I` is Tikhonov damping, adapted by the Levenberg-Marquardt rule with the
  reduction ratio :math:`\rho` of the actual to the predicted loss change, both on the curvature batch:
  :math:`\rho < 1/4 \Rightarrow \lambda \leftarrow \tfrac32\lambda`, :math:`\rho > 3/4
  \Rightarrow \lambda \leftarrow \tfrac23\lambda` (Martens 2010 sec. 4.1).

CG starts from :math:`\zeta p_{prev}` (the previous solution, decayed; sec. 4.5) and stops
by Martens' relative-progress rule (sec. 4.4): at iteration i with :math:`k = \max(10,
i/10)`, stop when :math:`q_i < 0` and :math:`(q_i - q_{i-k}) / q_i < k\epsilon`. CG-iterate
backtracking (sec. 4.6) keeps the iterates :math:`i = \lceil 1.3^j \rceil` and the last,
and walks back from the last while the minibatch loss keeps decreasing; an Armijo line
search (:math:`L(\theta+\alpha p) \le L(\theta) + c\,\alpha\, g^\top p`, :math:`\alpha
\leftarrow 0.8\alpha`; M&S 2011 sec. 3.3 use one) then scales the step.

Every batch starts from the zero state (``continues`` is ignored). All of the state
(:math:`\lambda`, the previous CG solution) is in :meth:`HessianFree.state_dict`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import torch
from torch import Tensor, nn
from torch.func import functional_call

from ..config.schema import check
from ..core import constrain
from ..parallel import sum_gradients
from .base import COTANGENT, FORWARD, TANGENT, TRAIN_STEP, Algorithm, Context, StepCallback, register
from .curvature import Chunks, Curvatures, chunk_parts, flat

# G v = J^T H J v (Work's unit) over kept graphs: a tangent and a cotangent pass; the forward
# pass is made once per curvature minibatch (Curvature)
GN_PRODUCT = TANGENT + COTANGENT


@dataclass(frozen=True)
class HFOptions:
    damping: float = 1.0  # initial Tikhonov damping lambda (adapted by the LM rule every iteration)
    structural_damping: float = 1.0 / 30  # mu: weight of the hidden-state penalty (M&S 2011 use 1/30); 0 = off
    curvature_fraction: float = 0.2  # curvature minibatch = this fraction of the gradient minibatch
    # one outer iteration takes this many task batches (of train.batch_size each) as its
    # gradient minibatch; tasks that draw one sequence length per batch (the pathological
    # tasks) then mix lengths in every step instead of fitting one length at a time
    batches_per_step: int = 1
    cg_max_iters: int = 250  # CG iterations at most per outer iteration (Martens 2010: 250)
    cg_tolerance: float = 5e-4  # epsilon of Martens' relative-progress stopping rule
    cg_decay: float = 0.95  # zeta: CG starts from zeta * the previous solution (0 = from zero)
    backtrack_base: float = 1.3  # keep CG iterates ceil(base^j) for backtracking
    line_search: bool = True  # Armijo backtracking line search on the chosen step
    min_damping: float = 1e-6  # floor of lambda

    def __post_init__(self) -> None:
        check(self.damping > 0, f"damping must be positive, got {self.damping} (algorithm.damping)")
        check(self.structural_damping >= 0,
              f"structural_damping must be >= 0 (0 = off), got {self.structural_damping}")
        check(0 < self.curvature_fraction <= 1,
              f"curvature_fraction must be in (0, 1], got {self.curvature_fraction}")
        check(self.batches_per_step >= 1,
              f"batches_per_step must be >= 1, got {self.batches_per_step} (algorithm.batches_per_step)")
        check(self.cg_max_iters >= 1, f"cg_max_iters must be >= 1, got {self.cg_max_iters}")
        check(self.cg_tolerance > 0, f"cg_tolerance must be positive, got {self.cg_tolerance}")
        check(0 <= self.cg_decay <= 1, f"cg_decay must be in [0, 1], got {self.cg_decay}")
        check(self.backtrack_base > 1, f"backtrack_base must be > 1, got {self.backtrack_base}")
        check(0 < self.min_damping <= self.damping, "min_damping must be in (0, damping]")


@register
class HessianFree(Algorithm):
    """Hessian-free optimisation; see the module docstring."""

    name = "hf"
    unit = "epoch"
    Options = HFOptions
    parallel = "data"  # under torchrun: each process its rows of every chunk, every product summed

    @classmethod
    def refusal(cls, spec, model, options) -> Optional[str]:
        if not spec.aligned and not spec.decoder:
            return ("hf's Gauss-Newton matrix needs a loss convex in the outputs, which CTC's "
                    "is not: use --algorithm bptt for a transcription task")
        if spec.distribution:
            return ("hf's Gauss-Newton matrix needs a loss convex in the outputs; a probabilistic "
                    "head's likelihood is not: use --set task.head=point, or --algorithm bptt")
        return None

    def __init__(self, ctx: Context, options: HFOptions) -> None:
        super().__init__(ctx, options)
        self.params: List[nn.Parameter] = [p for p in ctx.model.parameters() if p.requires_grad]
        self.damping = options.damping
        self.previous = torch.zeros(sum(p.numel() for p in self.params), dtype=self.params[0].dtype,
                                    device=self.params[0].device)
        self.iterations = 0

    # -- pieces --------------------------------------------------------------------------------
    # A minibatch is a list of chunks [(x, y)] (each chunk one task batch, so chunks may differ
    # in sequence length); every quantity is the mean over sequences, chunk i weighted n_i / N.
    def _loss_at(self, theta: Tensor, chunks: Chunks) -> float:
        """Minibatch loss at the flat parameters ``theta`` (the model's weights untouched)."""
        model = self.ctx.model
        names = [n for n, p in model.named_parameters() if p.requires_grad]
        params = {n: t.view(p.shape) for n, t, p in zip(names, theta.split([p.numel() for p in self.params]),
                                                        self.params)}
        total = torch.zeros((), dtype=torch.float64)
        with torch.no_grad():
            for b, w, share, _ in chunk_parts(chunks, self.ctx.dist, self.ctx.task):
                out = functional_call(model, params, (b.inputs,), {"lengths": b.lengths, "final_state": False,
                                                                   "decoder": b.decoder})[0]
                total += w * share * float(self.ctx.task.loss(out, b))
                self.ctx.work.add(b.work_steps, FORWARD)
        return float(self.ctx.dist.sum_(total))

    def _gradient(self, chunks: Chunks) -> Tuple[float, Tensor]:
        for p in self.params:
            p.grad = None
        total = torch.zeros((), dtype=torch.float64)
        for b, w, share, _ in chunk_parts(chunks, self.ctx.dist, self.ctx.task):
            out = self.ctx.model(b.inputs, lengths=b.lengths, final_state=False, decoder=b.decoder)[0]
            loss = (w * share) * self.ctx.task.loss(out, b)
            loss.backward()  # accumulates into .grad, one chunk's graph at a time
            self.ctx.work.add(b.work_steps, TRAIN_STEP)
            total += float(loss.detach())
        (total,) = sum_gradients(self.ctx.dist, self.params, total)  # every process's rows
        g = flat([p.grad if p.grad is not None else torch.zeros_like(p) for p in self.params])
        for p in self.params:
            p.grad = None
        return float(total), g

    def _cg(self, apply: Callable[[Tensor], Tensor], g: Tensor, x0: Tensor):
        """Minimise q(p) = g.p + p.A p / 2 from x0; returns (saved iterates [(i, p, q)], iters)."""
        o = self.options
        p = x0.clone()
        r = apply(p) + g  # residual = grad q
        d = -r
        rr = r @ r
        values: List[float] = []
        saved: List[Tuple[int, Tensor, float]] = []
        keep = {math.ceil(o.backtrack_base ** j) for j in range(200)}
        i = 0
        for i in range(1, o.cg_max_iters + 1):
            if not rr > 0:  # solved exactly (or the residual underflowed): a further step is 0/0
                i -= 1
                break
            Ad = apply(d)
            dAd = d @ Ad
            if dAd <= 0:  # no curvature along d (only from rounding: A is PSD + lambda I)
                break
            alpha = rr / dAd
            p = p + alpha * d
            r = r + alpha * Ad
            rr_new = r @ r
            d = -r + (rr_new / rr) * d
            rr = rr_new
            q = float(0.5 * p @ (r + g))  # q(p) = p.(A p + 2 g) / 2, with A p = r - g
            values.append(q)
            if i in keep:
                saved.append((i, p, q))
            k = max(10, int(0.1 * i))  # Martens 2010 sec. 4.4
            if i > k and q < 0 and (q - values[i - 1 - k]) / q < k * o.cg_tolerance:
                break
        if not saved or saved[-1][0] != i:
            saved.append((i, p, values[-1] if values else 0.0))
        return saved, i

    def _reduction_ratio(self, curv: "Curvatures", theta: Tensor, p: Tensor, chunks: Chunks) -> float:
        r""":math:`\rho = (L_c(\theta + p) - L_c(\theta)) / (g_c^\top p + \tfrac12 p^\top G_c p)`.

        Numerator and denominator on the same (curvature) sequences: with the gradient
        minibatch's :math:`g` in the denominator, as CG's own :math:`q` has it, the ratio
        mixes two samples and its sampling noise can keep :math:`\lambda` far too small
        (measured: :math:`\rho < 0` for many consecutive steps with :math:`\lambda`
        hardly rising). The model is the undamped one (no :math:`\lambda`, no structural
        term), as in the Levenberg-Marquardt/trust-region ratio (Nocedal & Wright 2006, eq. 4.4).
        """
        lc0, gc = self._gradient(chunks)
        model = float(gc @ p + 0.5 * p @ curv.product(p, structural=False))
        self.ctx.work.add(curv.steps, GN_PRODUCT)
        if not model < 0:
            return -math.inf
        return (self._loss_at(theta + p, chunks) - lc0) / model

    # -- one outer iteration -------------------------------------------------------------------
    def step(self, chunks: Chunks) -> Dict[str, float]:
        """One outer iteration on the minibatch ``chunks`` = [Batch, ...]."""
        o = self.options
        loss0, g = self._gradient(chunks)
        # the curvature minibatch: the first curvature_fraction of every chunk (all lengths)
        curv_chunks = [b.select(torch.arange(m)) for b in chunks
                       for m in [max(1, int(round(o.curvature_fraction * len(b))))]]
        lam = self.damping
        curv = Curvatures(self.ctx.model, self.ctx.task.loss, curv_chunks, structural=lam * o.structural_damping,
                           dist=self.ctx.dist, task=self.ctx.task)
        self.ctx.work.add(curv.steps, FORWARD)  # its one forward pass (the products reuse its graph)

        def apply(v: Tensor) -> Tensor:
            self.ctx.work.add(curv.steps, GN_PRODUCT)
            return curv.product(v) + lam * v

        theta = curv.theta
        saved, iters = self._cg(apply, g, o.cg_decay * self.previous)
        # CG-iterate backtracking: from the last iterate back while the loss keeps decreasing
        j = len(saved) - 1
        best = self._loss_at(theta + saved[j][1], chunks)
        while j > 0:
            prev = self._loss_at(theta + saved[j - 1][1], chunks)
            if prev >= best:
                break
            j, best = j - 1, prev
        p = saved[j][1]
        self.previous = saved[-1][1].detach().clone()  # the next CG starts from the last iterate
        # Levenberg-Marquardt on the curvature sequences (see _reduction_ratio)
        rho = self._reduction_ratio(curv, theta, p, curv_chunks)
        if rho < 0.25:
            self.damping = lam * 1.5
        elif rho > 0.75:
            self.damping = max(lam * 2.0 / 3.0, o.min_damping)
        # Armijo line search on the gradient minibatch
        alpha, slope = 1.0, float(g @ p)
        if o.line_search:
            while best > loss0 + 1e-2 * alpha * slope:
                alpha *= 0.8
                if alpha < 1e-3:
                    alpha = 0.0
                    break
                best = self._loss_at(theta + alpha * p, chunks)
        elif not best < loss0:
            alpha = 0.0
        with torch.no_grad():
            new = theta + alpha * p
            for param, t in zip(self.params, new.split([w.numel() for w in self.params])):
                param.copy_(t.view(param.shape))
        constrain(self.ctx.model)  # back within a cell's bound (IndRNN)
        self.iterations += 1
        return {"loss": loss0, "lambda": lam, "rho": rho if math.isfinite(rho) else -1.0,
                "cg_iters": float(iters), "alpha": alpha, "step_norm": float(alpha * p.norm())}

    def _minibatches(self) -> Iterator[Chunks]:
        """The round's task batches in groups of ``batches_per_step`` (the last may be smaller)."""
        chunks: Chunks = []
        for batch in self.ctx.task.batches("train", self.ctx.batch_size, generator=self.ctx.generator):
            chunks.append(batch)
            if len(chunks) == self.options.batches_per_step:
                yield chunks
                chunks = []
        if chunks:
            yield chunks

    def run_round(self, on_step: Optional[StepCallback] = None) -> Dict[str, float]:
        self.ctx.model.train()
        rows = []
        for chunks in self._minibatches():
            rows.append(self.step(chunks))
            if on_step is not None:
                on_step(rows[-1]["loss"])
        if not rows:
            return {"loss": float("nan")}
        return ({k: sum(r[k] for r in rows) / len(rows) for k in rows[0]}
                | {"lambda": self.damping, "outer_iterations": float(len(rows))})

    def state_dict(self) -> Dict[str, Any]:
        return {"damping": self.damping, "previous": self.previous.clone(), "iterations": self.iterations}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.damping = float(state["damping"])
        self.previous = state["previous"].to(self.previous)
        self.iterations = int(state["iterations"])

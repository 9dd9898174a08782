r"""CMA-ES: covariance matrix adaptation evolution strategy, (mu/mu_w, lambda) with full C.

Hansen, "The CMA Evolution Strategy: A Tutorial" (arXiv:1604.00772), Algorithm table
(eqs. 39-47 there), with the default parameters of its Table 1. Each generation::

    y_k = B D z_k,  z_k ~ N(0, I);   x_k = m + sigma y_k,   k = 1..lambda (= population)
    m      <- m + sigma <y>_w                      (mu = lambda/2 best, log weights)
    p_sigma <- (1-c_s) p_sigma + sqrt(c_s(2-c_s) mu_eff) C^-1/2 <y>_w
    p_c    <- (1-c_c) p_c + h_sigma sqrt(c_c(2-c_c) mu_eff) <y>_w
    C      <- (1-c_1-c_mu) C + c_1 (p_c p_c^T + (1-h_sigma) c_c(2-c_c) C) + c_mu sum w_i y_i y_i^T
    sigma  <- sigma exp(c_s/d_s (|p_sigma| / E|N(0,I)| - 1))

Written here rather than taken from the ``cma`` package: its state is a Python object
(not plain tensors for a ``weights_only`` checkpoint) and it draws from numpy's global
RNG, where rnntrain draws everything from the run's ``torch.Generator``. The state (m,
sigma, C, paths) is float64.

Above ``max_genes`` weights (``covariance = "auto"``; always with ``"diagonal"``) C is kept
diagonal: sep-CMA-ES (Ros & Hansen, "A Simple Modification in CMA-ES Achieving Linear
Time and Space Complexity", PPSN 2008), with B = I, D = sqrt(diag C), the rank-one and
rank-mu updates applied to the diagonal only and their rates c_1, c_mu multiplied by
(n + 2) / 3. It costs O(n) per sample instead of an O(n^3) eigendecomposition and an
n x n matrix, so the default 64-unit model (4353 weights) runs where full CMA-ES would
hold a 150 MB covariance and decompose it every generation.

The eigendecomposition C = B diag(d^2) B^T (O(n^3)) is redone only every
``1 / (10 n (c_1 + c_mu))`` generations (at least every generation), the lazy update of the
tutorial's appendix B.2 that ``cma`` and ``purecma`` use: C moves by at most c_1 + c_mu a
generation, so B and d from a few generations ago sample and whiten almost as well, and the
amortised cost falls to O(n^2) a sample. Up to a few hundred weights (the GA benchmark's
321, P = 50) that is every generation, as before; for a small seq2seq model's 2,234
weights and P = 4 it is every 97th, where a decomposition took 3-4 s and the population's
evaluation 11 ms.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Dict

import torch

from ...config.schema import check
from ...errors import UserError
from ..base import register
from .base import PopulationAlgorithm, PopulationOptions


@dataclass(frozen=True)
class CMAESOptions(PopulationOptions):
    sigma: float = 0.1  # initial step size around the model's initial weights
    max_genes: int = 4000  # largest weight vector with a full covariance (D x D)
    covariance: str = "auto"  # full | diagonal (sep-CMA-ES) | auto: full up to max_genes weights

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.sigma > 0, f"sigma must be > 0, got {self.sigma}")
        check(self.covariance in ("auto", "full", "diagonal"),
              f"covariance must be auto, full or diagonal, got '{self.covariance}' (algorithm.covariance)")
        check(self.population >= 4, f"CMA-ES needs population >= 4, got {self.population}")


@register
class CMAES(PopulationAlgorithm):
    """CMA-ES; see the module docstring."""

    name = "cmaes"
    label = "CMA-ES"
    Options = CMAESOptions

    def __init__(self, ctx, options: CMAESOptions) -> None:
        super().__init__(ctx, options)
        n, lam = self.D, options.population
        if options.covariance == "full" and n > options.max_genes:
            raise UserError(f"CMA-ES keeps a {n} x {n} covariance for this model's {n} weights "
                            f"(max_genes = {options.max_genes}): use covariance = \"diagonal\" (or "
                            f"\"auto\"), a smaller model, or raise algorithm.max_genes")
        self.diagonal = options.covariance == "diagonal" or (options.covariance == "auto" and n > options.max_genes)
        f64 = torch.float64
        mu = lam // 2
        w = math.log(mu + 0.5) - torch.log(torch.arange(1, mu + 1, dtype=f64))
        self.w = w / w.sum()  # (mu,) recombination weights
        self.mu_eff = float(1.0 / (self.w ** 2).sum())
        me = self.mu_eff
        self.c_s = (me + 2) / (n + me + 5)
        self.d_s = 1 + 2 * max(0.0, math.sqrt((me - 1) / (n + 1)) - 1) + self.c_s
        self.c_c = (4 + me / n) / (n + 4 + 2 * me / n)
        self.c_1 = 2 / ((n + 1.3) ** 2 + me)
        self.c_mu = min(1 - self.c_1, 2 * (me - 2 + 1 / me) / ((n + 2) ** 2 + me))
        if self.diagonal:  # sep-CMA-ES: a diagonal learns (n + 2) / 3 times faster (Ros & Hansen 2008)
            self.c_1 *= (n + 2) / 3
            self.c_mu = min(1 - self.c_1, self.c_mu * (n + 2) / 3)
        self.chi_n = math.sqrt(n) * (1 - 1 / (4 * n) + 1 / (21 * n * n))  # E|N(0, I)|
        self.m = self.layout.vector(ctx.model).to(f64)  # (n,) mean
        self.sigma = options.sigma
        self.C = torch.ones(n, dtype=f64) if self.diagonal else torch.eye(n, dtype=f64)  # diag C, or C
        self.p_s = torch.zeros(n, dtype=f64)
        self.p_c = torch.zeros(n, dtype=f64)
        # the eigendecomposition in use, C's eigenvalues (n,) and eigenvectors (n, n), and the
        # generation it was made at: C = I's own to begin with
        self.eigen_every = 1 if self.diagonal else max(1, int(1 / (10 * n * (self.c_1 + self.c_mu))))
        self.evals, self.B = (self.C, None) if self.diagonal else (torch.ones(n, dtype=f64), torch.eye(n, dtype=f64))
        self.eigen_at = 0

    def _eigen(self) -> None:
        """C = B diag(evals) B^T, redone every ``eigen_every`` generations (module doc)."""
        if self.diagonal:  # B = I
            self.evals, self.B = self.C, None
        elif self.generation_count - self.eigen_at >= self.eigen_every:
            self.evals, self.B = torch.linalg.eigh(self.C)
            self.eigen_at = self.generation_count

    def generation(self) -> Dict[str, float]:
        n, lam = self.D, self.options.population
        self._eigen()
        evals, B = self.evals, self.B  # C = B diag(d^2) B^T
        d = evals.clamp_min(1e-20).sqrt()
        z = torch.randn(lam, n, generator=self.ctx.generator, dtype=torch.float64)
        y = z * d if B is None else (z * d) @ B.T  # (lambda, n) ~ N(0, C)
        x = self.m + self.sigma * y
        losses = self.evaluate(x.to(self.dtype))
        order = losses.argsort()[:len(self.w)]
        y_sel = y[order]  # (mu, n)
        y_w = self.w @ y_sel
        self.m = self.m + self.sigma * y_w
        c_inv_sqrt_y = y_w / d if B is None else B @ ((B.T @ y_w) / d)
        self.p_s = (1 - self.c_s) * self.p_s + math.sqrt(self.c_s * (2 - self.c_s) * self.mu_eff) * c_inv_sqrt_y
        g = self.generation_count + 1
        norm_ps = float(self.p_s.norm())
        h = norm_ps / math.sqrt(1 - (1 - self.c_s) ** (2 * g)) < (1.4 + 2 / (n + 1)) * self.chi_n
        self.p_c = (1 - self.c_c) * self.p_c + (math.sqrt(self.c_c * (2 - self.c_c) * self.mu_eff) * y_w if h else 0)
        if self.diagonal:  # the diagonals of p_c p_c^T and of sum w_i y_i y_i^T
            rank_one, rank_mu = self.p_c ** 2, self.w @ y_sel ** 2
        else:
            rank_one, rank_mu = torch.outer(self.p_c, self.p_c), (y_sel.T * self.w) @ y_sel
        self.C = ((1 - self.c_1 - self.c_mu) * self.C
                  + self.c_1 * (rank_one + (0 if h else self.c_c * (2 - self.c_c)) * self.C)
                  + self.c_mu * rank_mu)
        if not self.diagonal:
            self.C = (self.C + self.C.T) / 2  # keep it exactly symmetric
        self.sigma *= math.exp(self.c_s / self.d_s * (norm_ps / self.chi_n - 1))
        return {"sigma": self.sigma, "condition": float(evals.max() / evals.clamp_min(1e-20).min())}

    def search_state(self) -> Dict[str, Any]:
        state = {"m": self.m.clone(), "sigma": self.sigma, "C": self.C.clone(),
                 "p_s": self.p_s.clone(), "p_c": self.p_c.clone()}
        if self.B is not None:  # the decomposition in use (recomputing it need not repeat bit for bit)
            state.update(evals=self.evals.clone(), B=self.B.clone(), eigen_at=self.eigen_at)
        return state

    def load_search_state(self, state: Dict[str, Any]) -> None:
        self.m, self.sigma, self.C = state["m"].clone(), float(state["sigma"]), state["C"].clone()
        self.p_s, self.p_c = state["p_s"].clone(), state["p_c"].clone()
        if "B" in state:
            self.evals, self.B, self.eigen_at = state["evals"].clone(), state["B"].clone(), int(state["eigen_at"])
        elif not self.diagonal:  # a checkpoint from before the lazy update: decomposed now
            self.evals, self.B = torch.linalg.eigh(self.C)
            self.eigen_at = self.generation_count

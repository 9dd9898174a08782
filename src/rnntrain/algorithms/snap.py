r"""SnAp-k: the Sparse n-step Approximation of RTRL (Menick, Elsen, Evci, Osindero, Simonyan
& Graves 2020, "Practical Real Time Recurrent Learning with a Sparse Approximation",
ICLR 2021, sec. 3), and the sparse influence machinery it shares with CRBP.

SnAp-k keeps the influence ``M_t`` only on the entries ``(state i, parameter j)`` that
parameter j can reach in k steps, and drops the rest at every step:

.. math::
    M_t = \big(D_t M_{t-1} + I_t\big) \odot \text{pattern}_k, \qquad
    \text{pattern}_1 = \operatorname{nz}(I),\quad
    \text{pattern}_{k+1} = \operatorname{nz}(|D|\,\text{pattern}_k + |I|).

For an Elman network, parameter W_ij reaches only h_i in one step: SnAp-1 keeps one number
per parameter. Where the pattern is closed under D (a locally recurrent or diagonal
network), nothing is dropped and SnAp is exact RTRL.

Sparse storage, so the cost really drops: ``M`` is a vector of the pattern's nnz entries
per stream, and the update is a gather, an elementwise product and an ``index_add`` over
the (entry, entry) pairs that D connects — O(pairs) instead of O(S²P). The needed entries of
D and I are read off a few Jacobian–vector products chosen by graph colouring (Curtis,
Powell & Reid 1974): one jvp per colour of D's needed columns, one vjp per colour of
I's rows. Elman SnAp-1 needs one jvp (D's diagonal) and one vjp per step: the cost of a
few forward steps. Patterns denser than :data:`DENSE_ABOVE` are kept as a dense masked
matrix instead (same numbers, RTRL's matrix product): SnAp-2 of a dense network is dense.
The pattern is probed once, from random states, inputs and parameters in float64.
"""
from __future__ import annotations

from typing import Any, Dict, Optional

import torch
from torch import Tensor

from .base import COTANGENT, FORWARD, TANGENT, register
from .online import OnlineAlgorithm, Sensitivity, StepFunction
from .rtrl import dense_influence_cost

DENSE_ABOVE = 0.25  # keep M densely (masked) when the pattern holds more than this fraction
PROBES = 2  # random probes whose Jacobian patterns are united


def probe_patterns(fn: StepFunction, seed: int = 0):
    """Structural nonzeros (D (S, S), I (S, P)) of the step, from random float64 probes."""
    probe = fn.structural()
    g = torch.Generator().manual_seed(seed)
    D_nz = torch.zeros(fn.S, fn.S, dtype=torch.bool)
    I_nz = torch.zeros(fn.S, fn.P, dtype=torch.bool)
    F = _input_size(probe)
    for _ in range(PROBES):
        theta = torch.randn(fn.P, generator=g, dtype=torch.float64)
        s = torch.randn(1, fn.S, generator=g, dtype=torch.float64)
        x = torch.randn(1, F, generator=g, dtype=torch.float64)
        _, D, I = probe.jacobians(theta, s, x)
        D_nz |= D[0] != 0
        I_nz |= I[0] != 0
    return D_nz, I_nz


def _input_size(fn: StepFunction) -> int:
    rnn = getattr(fn, "rnn", None)
    return rnn.input_size if rnn is not None else getattr(fn, "F", 1)


def snap_pattern(D_nz: Tensor, I_nz: Tensor, k: Optional[int]) -> Tensor:
    """Entries reachable in k steps (k None: the closure, every entry ever reachable)."""
    pattern, steps = I_nz, 1
    while k is None or steps < k:
        nxt = ((D_nz.double() @ pattern.double()) > 0) | I_nz
        if torch.equal(nxt, pattern):
            break
        pattern, steps = nxt, steps + 1
    return pattern


def greedy_colouring(conflict: Tensor) -> Tensor:
    """Colours (V,) such that conflicting vertices (conflict (V, V) bool) differ."""
    V = conflict.shape[0]
    colour = torch.full((V,), -1, dtype=torch.long)
    for v in range(V):
        used = set(colour[conflict[v]].tolist())
        c = 0
        while c in used:
            c += 1
        colour[v] = c
    return colour


class SparseSensitivity(Sensitivity):
    """The influence kept on a fixed ``pattern`` (S, P); exact when the pattern is closed."""

    def __init__(self, fn: StepFunction, pattern: Tensor, D_nz: Tensor) -> None:
        super().__init__(fn)
        self.pattern = pattern
        self.density = float(pattern.double().mean())
        self.dense = self.density > DENSE_ABOVE
        if not self.dense:
            self._build(pattern, D_nz)

    def _build(self, pattern: Tensor, D_nz: Tensor) -> None:
        cols, rows = pattern.t().nonzero(as_tuple=True)  # entries sorted by column, then row
        self.e_row, self.e_col = rows, cols  # (nnz,)
        counts = pattern.sum(0)  # (P,) entries per column
        start = torch.cumsum(counts, 0) - counts  # first entry of each column
        # columns with the same set of rows share their local pairs: group them
        sets, group = torch.unique(pattern.t(), dim=0, return_inverse=True)
        dst, src, d_row, d_col = [], [], [], []
        for g in range(sets.shape[0]):
            R = sets[g].nonzero()[:, 0]  # (m,) rows of the group's columns
            if len(R) == 0:
                continue
            a, b = D_nz[R][:, R].nonzero(as_tuple=True)  # local pairs: D[R[a], R[b]] != 0
            base = start[group == g]  # (q,)
            dst.append((base[:, None] + a[None]).reshape(-1))
            src.append((base[:, None] + b[None]).reshape(-1))
            d_row.append(R[a].repeat(len(base)))
            d_col.append(R[b].repeat(len(base)))
        cat = lambda xs: torch.cat(xs) if xs else torch.zeros(0, dtype=torch.long)
        self.dst, self.src = cat(dst), cat(src)  # (pairs,): M_new[dst] += D[.] M[src]
        d_row, d_col = cat(d_row), cat(d_col)
        S = pattern.shape[0]
        # the entries of D the pairs read, and a colouring of D's columns for jvps
        need = torch.zeros(S, S, dtype=torch.bool)
        need[d_row, d_col] = True
        self.d_colour = greedy_colouring((need.t().double() @ need.double()) > 0)  # (S,)
        self.pair_d = self.d_colour[d_col] * S + d_row  # index into the (K, S) jvp results
        U = torch.nn.functional.one_hot(self.d_colour, int(self.d_colour.max()) + 1).t()  # (Kd, S)
        self.r_colour = greedy_colouring((pattern.double() @ pattern.t().double()) > 0)  # (S,)
        V = torch.nn.functional.one_hot(self.r_colour, int(self.r_colour.max()) + 1).t()  # (Ki, S)
        self.e_index = self.r_colour[rows] * self.fn.P + cols  # into the (Ki, P) vjp results
        self.jvps, self.vjps = U.shape[0], V.shape[0]
        # the tangents (D's column colours) and cotangents (the pattern's row colours), both
        # padded with zero rows to K = max(Kd, Ki): one pass computes both products
        K = max(self.jvps, self.vjps)
        pad = lambda A: torch.cat([A, A.new_zeros(K - A.shape[0], A.shape[1])])
        self.U, self.V = pad(U), pad(V)  # (K, S) each

    @property
    def cost(self) -> float:
        """Dense: RTRL's, masked. Sparse: the forward, a tangent per colour of D's columns, a
        cotangent per colour of the pattern's rows, and one multiply-add per pair, P per step."""
        if self.dense:
            return dense_influence_cost(self.fn.S)
        return FORWARD + TANGENT * self.jvps + COTANGENT * self.vjps + len(self.dst) / self.fn.P

    def reset(self, batch: int, like: Tensor) -> None:
        if self.dense:
            self.mask = self.pattern.to(like)
            self.M = like.new_zeros(batch, self.fn.S, self.fn.P)
            self._spare = torch.empty_like(self.M)  # RTRL's two buffers, taking turns
        else:
            self.M = like.new_zeros(batch, len(self.e_row))
            dev = like.device
            for name in ("dst", "src", "pair_d", "e_index", "e_row", "e_col"):
                setattr(self, name, getattr(self, name).to(dev))
            self.U, self.V = self.U.to(like), self.V.to(like)

    def advance(self, theta: Tensor, s: Tensor, x: Tensor) -> Tensor:
        if self.dense:
            nxt = self._spare if self._spare.shape == self.M.shape else torch.empty_like(self.M)
            s_next, D, I = self.fn.jacobians(theta, s, x, out=nxt)
            I.baddbmm_(D, self.M).mul_(self.mask)  # (D M + I) ⊙ pattern, in the spare buffer
            self._spare, self.M = self.M, I
            return s_next
        N = s.shape[0]
        # D times the colour sums of its columns, and I pulled back along the row colours
        s_next, VI, DU = self.fn.products(theta, s, x, self.V.expand(N, -1, -1),
                                          self.U.expand(N, -1, -1))  # (N, K, P), (N, K, S)
        VI = VI[:, :self.vjps]  # (N, Ki, P)
        D_vals = DU[:, :self.jvps].reshape(N, -1).index_select(1, self.pair_d)  # (N, pairs)
        M = VI.reshape(N, -1).index_select(1, self.e_index)  # I on the pattern, (N, nnz)
        M.index_add_(1, self.dst, D_vals * self.M.index_select(1, self.src))
        self.M = M
        return s_next

    def gradient(self, c: Tensor) -> Tensor:
        if self.dense:
            return torch.bmm(c[:, None, :], self.M)[:, 0]
        g = c.new_zeros(c.shape[0], self.fn.P)
        return g.index_add_(1, self.e_col, c.index_select(1, self.e_row) * self.M)  # (N, P)

    def state_dict(self) -> Dict[str, Any]:
        M = getattr(self, "M", None)
        return {"M": None if M is None else M.clone()}  # the dense buffers are reused

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        if state["M"] is not None:
            self.M = state["M"].clone()
            self._spare = torch.empty_like(self.M)


class _SnAp(OnlineAlgorithm):
    k: int = 1

    def make_sensitivity(self, fn: StepFunction) -> Sensitivity:
        D_nz, I_nz = probe_patterns(fn)
        return SparseSensitivity(fn, snap_pattern(D_nz, I_nz, self.k), D_nz)


@register
class SnAp1(_SnAp):
    """SnAp-1: influence kept on the entries each parameter reaches in one step."""

    name = "snap1"
    k = 1


@register
class SnAp2(_SnAp):
    """SnAp-2: influence kept on the entries each parameter reaches in two steps."""

    name = "snap2"
    # two-step patterns of a dense cell are dense: RTRL's n⁴ cost and the same model size (rtrl.py)
    SUGGESTED = {"model": {"hidden": 32}}
    k = 2

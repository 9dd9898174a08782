r"""Attention over recurrent states: a query reads a weighted mean of a memory.

For a query :math:`q` (N, Q) -- or one per target step, (N, T, Q) -- and a memory of
states :math:`k_1..k_S` (N, S, K) whose valid positions are ``mask`` (N, S)::

    score(q, k_s) = v^T tanh(W_q q + W_k k_s)       additive   (Bahdanau, Cho & Bengio 2015)
                  = q^T W k_s                       general    (Luong, Pham & Manning 2015)
                  = q^T k_s                         dot        (Luong et al. 2015; Q = K)
                  = q^T k_s / sqrt(K)               scaled-dot (Vaswani et al. 2017; Q = K)
    a_s = softmax_s(score) over the valid s only,   context = sum_s a_s k_s   (N, [T,] K)

Padding gets exactly zero weight: its scores are set to the dtype's lowest value before the
softmax (``exp`` of that underflows to 0 when any position is valid) and the weights are
multiplied by the mask (a memory with no valid position gives a zero context, not NaN).
The same code runs under ``torch.func.vmap`` (population methods) and ``jvp``.
"""
from __future__ import annotations

import math
from typing import Optional, Tuple

import torch
from torch import Tensor, nn

from ..errors import UserError

ATTENTION = ("additive", "general", "dot", "scaled-dot")
ADDITIVE_BLOCK = 2 ** 19  # values of the additive score's tanh computed at once
ALIASES = {"bahdanau": "additive", "luong": "general"}  # the papers' names, accepted in configs


class Attention(nn.Module):
    """One score function (see the module docstring) between queries of size
    ``query_size`` and memory states of size ``key_size``; ``size`` is the additive form's
    hidden width (default: ``key_size``)."""

    def __init__(self, kind: str, query_size: int, key_size: int, size: int = 0) -> None:
        super().__init__()
        if kind not in ATTENTION:
            raise UserError(f"unknown attention '{kind}': choose one of {', '.join(ATTENTION)}")
        if kind in ("dot", "scaled-dot") and query_size != key_size:
            raise UserError(f"attention '{kind}' compares a query of {query_size} with states of "
                            f"{key_size} values: use attention general or additive")
        self.kind, self.key_size = kind, key_size
        if kind == "additive":
            size = size or key_size
            self.query = nn.Linear(query_size, size, bias=False)
            self.key = nn.Linear(key_size, size)
            self.v = nn.Linear(size, 1, bias=False)
        elif kind == "general":
            self.key = nn.Linear(key_size, query_size, bias=False)  # W k, once per memory

    def keys(self, memory: Tensor) -> Tensor:
        """What the score needs of the memory, computed once per source: W_k k (additive),
        W k (general), k itself (dot). memory (N, S, K) -> (N, S, ·)."""
        return self.key(memory) if self.kind in ("additive", "general") else memory

    def forward(self, query: Tensor, memory: Tensor, mask: Optional[Tensor] = None,
                keys: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        """query (N, Q) or (N, T, Q), memory (N, S, K), mask (N, S) bool (None: all valid),
        keys = :meth:`keys` (memory) when precomputed -> (context (N, [T,] K), weights (N, [T,] S))."""
        keys = self.keys(memory) if keys is None else keys
        single = query.dim() == 2
        q = query[:, None] if single else query  # (N, T, Q)
        if self.kind == "additive":
            scores = self._additive(self.query(q), keys)  # (N, T, S)
        else:
            scores = q @ keys.transpose(1, 2)  # (N, T, S)
            if self.kind == "scaled-dot":
                scores = scores / math.sqrt(self.key_size)
        weights = masked_softmax(scores, None if mask is None else mask[:, None, :])
        context = weights @ memory  # (N, T, K)
        return (context[:, 0], weights[:, 0]) if single else (context, weights)


    def _additive(self, q: Tensor, keys: Tensor) -> Tensor:
        """v^T tanh(q_t + k_s) for projected queries q (N, T, A) and keys (N, S, A) -> (N, T, S),
        a few target steps at a time: the (N, T, S, A) tanh is the costly part, and in cache-
        sized blocks (about 2^19 values) forward and backward run 1.6x faster (measured at
        N 64, T 17, S 16, A 128) than in one piece."""
        N, T, S, A = q.shape[0], q.shape[1], keys.shape[1], keys.shape[2]
        step = max(1, ADDITIVE_BLOCK // max(N * S * A, 1))
        blocks = [self.v(torch.tanh(q[:, i:i + step, None, :] + keys[:, None, :, :])).squeeze(-1)
                  for i in range(0, T, step)]
        return blocks[0] if len(blocks) == 1 else torch.cat(blocks, 1)


def masked_softmax(scores: Tensor, mask: Optional[Tensor]) -> Tensor:
    """softmax over the last dimension with exactly zero weight where ``mask`` is False."""
    if mask is None:
        return scores.softmax(-1)
    low = torch.finfo(scores.dtype).min
    weights = scores.masked_fill(~mask, low).softmax(-1)
    return weights * mask.to(weights.dtype)


r"""Decoding connectionist temporal classification outputs (Graves et al. 2006).

The network emits, at every step, a distribution over C labels and a *blank* (index 0).
A path :math:`\pi` maps to a labelling by :math:`\mathcal{B}`: merge repeated symbols, then
drop blanks. Decoding looks for the most probable labelling:

- greedy (best path, Graves et al. 2006 sec. 3.2): the arg-max at every step, then
  :math:`\mathcal{B}`; exact only when one path dominates;
- prefix beam search (Graves 2012, "Supervised Sequence Labelling", sec. 7.5; the
  formulation of Hannun et al. 2014): keeps the ``width`` most probable prefixes, each with
  the probability of its paths ending in blank (:math:`p_b`) and in its last symbol
  (:math:`p_{nb}`), summing every path that maps to a prefix. Width 1 is not greedy in
  general (it sums paths); it equals greedy on peaked outputs.

Both take log-probabilities (L, C+1) of one sequence's valid steps, in NumPy.
"""
from __future__ import annotations

from typing import Dict, List, Tuple

import numpy as np

BLANK = 0


def greedy_decode(log_probs: np.ndarray) -> List[int]:
    """Best path: arg-max per step, repeats merged, blanks dropped. (L, C+1) -> label ids."""
    best = log_probs.argmax(-1)
    out, prev = [], BLANK
    for k in best:
        if k != prev and k != BLANK:
            out.append(int(k))
        prev = k
    return out


def _logadd(a: float, b: float) -> float:
    if a == -np.inf:
        return b
    if b == -np.inf:
        return a
    m = max(a, b)
    return m + float(np.log1p(np.exp(-abs(a - b))))


def beam_decode(log_probs: np.ndarray, width: int = 8) -> List[int]:
    """Prefix beam search (see the module docstring). (L, C+1) -> label ids."""
    beams: Dict[Tuple[int, ...], Tuple[float, float]] = {(): (0.0, -np.inf)}  # prefix -> (log p_b, log p_nb)
    for lp in log_probs:
        nxt: Dict[Tuple[int, ...], List[float]] = {}

        def add(prefix, pb, pnb):
            cur = nxt.setdefault(prefix, [-np.inf, -np.inf])
            cur[0], cur[1] = _logadd(cur[0], pb), _logadd(cur[1], pnb)

        # only symbols that can matter: the most probable few at this step
        cands = np.argsort(lp)[::-1][:max(width, 2) + 1]
        for prefix, (pb, pnb) in beams.items():
            total = _logadd(pb, pnb)
            add(prefix, total + lp[BLANK], -np.inf)  # a blank keeps the prefix
            for k in cands:
                k = int(k)
                if k == BLANK:
                    continue
                if prefix and prefix[-1] == k:
                    add(prefix, -np.inf, pnb + lp[k])  # the repeat merges into the same symbol
                    add(prefix + (k,), -np.inf, pb + lp[k])  # after a blank: a new symbol
                else:
                    add(prefix + (k,), -np.inf, total + lp[k])
        ranked = sorted(nxt.items(), key=lambda kv: _logadd(*kv[1]), reverse=True)[:width]
        beams = {p: (v[0], v[1]) for p, v in ranked}
    best = max(beams.items(), key=lambda kv: _logadd(*kv[1]))[0]
    return list(best)

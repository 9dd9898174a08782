r"""Does a network count? Its state along one long string of a counting language.

Weiss, Goldberg & Yahav 2018 ("On the Practical Computational Power of Finite Precision
RNNs for Language Recognition", sec. 5) show that an LSTM trained on aⁿbⁿ keeps a cell
unit proportional to #a - #b, while a GRU or a tanh Elman network cannot keep an
unbounded count. :func:`state_along` returns every state component at every step of a
string (LSTM: h and c), :func:`plot_counting` draws the ``top`` units most correlated
with the count (#a - #b; for Dyck: the depth) next to the count itself.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List

import torch
from torch import Tensor


def state_along(model, task, string: str) -> Dict[str, Tensor]:
    """{"h": (L, H), "c": (L, H) for an LSTM}: the state after ``^`` and each symbol."""
    x, _ = task.encode([string])  # (1, L)
    feats = model.encode(x)  # (1, L, F)
    rnn = model.core("the counting analysis")
    hx = None
    parts: List[List[Tensor]] = []
    with torch.no_grad():
        zeros = torch.zeros(rnn.num_layers, 1, rnn.hidden_size, dtype=feats.dtype, device=feats.device)
        hx = (zeros, zeros.clone()) if rnn.mode == "LSTM" else zeros
        for t in range(len(string) + 1):
            hx = rnn.step(feats[:, t], hx)
            parts.append([s[-1, 0] for s in (hx if isinstance(hx, tuple) else (hx,))])
    names = ["h", "c"][:len(parts[0])]
    return {k: torch.stack([p[i] for p in parts]) for i, k in enumerate(names)}


def count_of(string: str) -> Tensor:
    """(L,) the counter a network needs after ^ and each symbol: #a - #b, or the bracket depth."""
    up, down = ("a", "b") if "a" in string else ("([", ")]")
    depth, out = 0, [0.0]
    for ch in string:
        depth += (ch in up) - (ch in down)
        out.append(float(depth))
    return torch.tensor(out)


def plot_counting(model, task, string: str, path: Path, top: int = 3) -> float:
    """Plot the ``top`` state units most correlated with the count; return the best |r|."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    states = state_along(model, task, string)
    k = count_of(string).double()
    fig, ax = plt.subplots(figsize=(8, 3))
    best = 0.0
    for name, S in states.items():
        S = S.double()
        r = ((S - S.mean(0)) * (k - k.mean())[:, None]).sum(0) / (
            (S - S.mean(0)).norm(dim=0) * (k - k.mean()).norm() + 1e-12)
        order = r.abs().argsort(descending=True)[:top]
        best = max(best, float(r.abs().max()))
        for j in order.tolist():
            ax.plot(S[:, j], lw=1, label=f"{name}[{j}] (r = {float(r[j]):+.2f})")
    ax2 = ax.twinx()
    ax2.plot(k, "k--", lw=1, label="count")
    ax.set(xlabel="step", ylabel="state", title=f"state along a string of length {len(string)}")
    ax.legend(loc="upper left", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return best

"""Training step of every cell variant and regulariser against the plain LSTM and against
what a PyTorch user writes today for the same cell: a Python loop over a hand-written cell
module (the pattern of pytorch/benchmarks/fastrnns/custom_lstms.py; pytorch#6760, #561).

One training step = forward of a (batch, T, hidden) float32 input through one layer, then
backward of output.sum(). Every implementation of a row is timed round-robin (one call each
per repeat, after warm-up); the reported time is the median. Ratios are time ratios:
> 1 means slower than the plain LSTM (torch's fused kernel through rnntrain.Recurrent).
"""
from __future__ import annotations

import statistics
import time
from typing import Callable, Dict, List

import torch
from torch import Tensor, nn

from rnntrain import Recurrent
from rnntrain.core import Noise
from rnntrain.core.variants import ctrnn_cell

SHAPE = (32, 100, 128)  # (batch, T, hidden), the shape


# -- what a user writes by hand: one cell module, a Python loop over time ----------------------

class HandLoop(nn.Module):
    """A hand-written cell stepped in a Python loop (batch-first input, outputs stacked)."""

    def __init__(self, cell: nn.Module, arity: int, hidden: int) -> None:
        super().__init__()
        self.cell, self.arity, self.hidden = cell, arity, hidden

    def forward(self, x: Tensor):
        state = tuple(x.new_zeros(x.shape[0], self.hidden) for _ in range(self.arity))
        outs = []
        for x_t in x.unbind(1):
            state = self.cell(x_t, state)
            outs.append(state[0])
        return torch.stack(outs, 1), state


class LayerNormLSTMCell(nn.Module):
    def __init__(self, n: int, h: int) -> None:
        super().__init__()
        self.ih, self.hh = nn.Linear(n, 4 * h), nn.Linear(h, 4 * h, bias=False)
        self.ln_i, self.ln_h, self.ln_c = nn.LayerNorm(4 * h), nn.LayerNorm(4 * h), nn.LayerNorm(h)

    def forward(self, x, state):
        h, c = state
        i, f, g, o = (self.ln_i(self.ih(x)) + self.ln_h(self.hh(h))).chunk(4, 1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(self.ln_c(c)), c


class LayerNormGRUCell(nn.Module):
    def __init__(self, n: int, h: int) -> None:
        super().__init__()
        self.ih, self.hh = nn.Linear(n, 3 * h), nn.Linear(h, 3 * h)
        self.ln_i, self.ln_h = nn.LayerNorm(3 * h), nn.LayerNorm(3 * h)

    def forward(self, x, state):
        (h,) = state
        x_r, x_z, x_n = self.ln_i(self.ih(x)).chunk(3, 1)
        h_r, h_z, h_n = self.ln_h(self.hh(h)).chunk(3, 1)
        r, z = torch.sigmoid(x_r + h_r), torch.sigmoid(x_z + h_z)
        n = torch.tanh(x_n + r * h_n)
        return (n + z * (h - n),)


class PeepholeLSTMCell(nn.Module):
    def __init__(self, n: int, h: int) -> None:
        super().__init__()
        self.ih, self.hh = nn.Linear(n, 4 * h), nn.Linear(h, 4 * h)
        self.peep = nn.Parameter(torch.zeros(3, h))

    def forward(self, x, state):
        h, c = state
        i, f, g, o = (self.ih(x) + self.hh(h)).chunk(4, 1)
        c = torch.sigmoid(f + self.peep[1] * c) * c + torch.sigmoid(i + self.peep[0] * c) * torch.tanh(g)
        return torch.sigmoid(o + self.peep[2] * c) * torch.tanh(c), c


class IndRNNCell(nn.Module):
    def __init__(self, n: int, h: int) -> None:
        super().__init__()
        self.ih, self.u = nn.Linear(n, h), nn.Parameter(torch.rand(h))

    def forward(self, x, state):
        return (torch.relu(self.ih(x) + self.u.clamp(-1, 1) * state[0]),)


class CTRNNCell(nn.Module):
    def __init__(self, n: int, h: int) -> None:
        super().__init__()
        self.ih, self.hh = nn.Linear(n, h), nn.Linear(h, h)
        self.log_tau = nn.Parameter(torch.empty(h).uniform_(0, 2.3))

    def forward(self, x, state):
        (h,) = state
        return (h + torch.exp(-self.log_tau).clamp(max=1) * (torch.tanh(self.ih(x) + self.hh(h)) - h),)


class ZoneoutLSTMCell(nn.Module):
    def __init__(self, n: int, h: int, z: float = 0.1) -> None:
        super().__init__()
        self.cell, self.z = nn.LSTMCell(n, h), z

    def forward(self, x, state):
        new = self.cell(x, state)
        return tuple(torch.where(torch.rand_like(a) < self.z, b, a) for a, b in zip(new, state))


# (label, rnntrain module factory, hand-written factory or None: torch has it natively)
def _rows(n: int) -> List[tuple]:
    def ours(cell, **kw) -> Callable[[], nn.Module]:
        return lambda: Recurrent(cell, n, n, batch_first=True, **kw)

    return [
        ("lstm, step path", ours("LSTM", path="step"), None),
        ("ln-lstm", ours("ln_lstm"), lambda: HandLoop(LayerNormLSTMCell(n, n), 2, n)),
        ("ln-gru", ours("ln_gru"), lambda: HandLoop(LayerNormGRUCell(n, n), 1, n)),
        ("peephole", ours("peephole"), lambda: HandLoop(PeepholeLSTMCell(n, n), 2, n)),
        ("lstm, proj 64 (fused)", ours("LSTM", proj_size=64), lambda: nn.LSTM(n, n, batch_first=True, proj_size=64)),
        ("indrnn", ours("indrnn"), lambda: HandLoop(IndRNNCell(n, n), 1, n)),
        ("ctrnn, euler", ours(ctrnn_cell("euler")), lambda: HandLoop(CTRNNCell(n, n), 1, n)),
        ("ctrnn, rk4", ours(ctrnn_cell("rk4")), None),
        ("lstm + zoneout 0.1", ours("LSTM", noise=Noise(zoneout=0.1)), lambda: HandLoop(ZoneoutLSTMCell(n, n), 2, n)),
        ("lstm + recurrent dropout 0.25", ours("LSTM", noise=Noise(recurrent_dropout=0.25)), None),
        ("lstm + weight-drop 0.5 (fused)", ours("LSTM", noise=Noise(weight_drop=0.5)), None),
    ]


def _step(module: nn.Module, x: Tensor) -> float:
    module.zero_grad(set_to_none=True)
    start = time.perf_counter()
    out, _ = module(x)
    out.sum().backward()
    return time.perf_counter() - start


def _time(modules: Dict[str, nn.Module], x: Tensor, repeats: int) -> Dict[str, float]:
    times: Dict[str, List[float]] = {k: [] for k in modules}
    for i in range(repeats + 2):  # two warm-up rounds
        for name, module in modules.items():
            seconds = _step(module, x)
            if i >= 2:
                times[name].append(seconds)
    return {k: statistics.median(v) for k, v in times.items()}


def run(quick: bool = False) -> str:
    batch, T, n = SHAPE
    repeats = 3 if quick else 10
    torch.manual_seed(0)
    x = torch.randn(batch, T, n)
    plain = Recurrent("LSTM", n, n, batch_first=True).train()
    lines = [f"One training step (forward + backward of output.sum()) at batch {batch}, T {T}, hidden {n}, "
             f"float32, {torch.get_num_threads()} threads, median of {repeats}; ratios are time ratios "
             f"against rnntrain's plain LSTM (torch's fused kernel) and against the hand-written loop "
             f"(or torch's own module where it has the cell).", "",
             "| cell | rnntrain ms | hand-written / torch ms | rnntrain / plain LSTM | rnntrain / hand-written |",
             "|---|---:|---:|---:|---:|"]
    for label, ours, theirs in _rows(n):
        modules: Dict[str, nn.Module] = {"plain": plain, "ours": ours().train()}
        if theirs is not None:
            modules["theirs"] = theirs().train()
        t = _time(modules, x, repeats)
        ms, hand = t["ours"], t.get("theirs")
        hand_ms = "" if hand is None else f"{hand * 1e3:.1f}"
        versus = "" if hand is None else f"{ms / hand:.2f}"
        lines.append(f"| {label} | {ms * 1e3:.1f} | {hand_ms} | {ms / t['plain']:.2f} | {versus} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(run())

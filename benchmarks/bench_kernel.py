"""The compiled recurrent kernel (``path="compiled"``) against torch's modules, 1 and 2 threads.

One training step: forward of a layer and backward of ``output.sum()``, float32, on the
seed's shape (batch 32, 20 steps, 64 units, 1 input) and two larger ones (input = hidden).
torch's module and rnntrain's compiled path share weights and are timed round-robin
(several calls of each per repeat, median of the repeats), so load from other processes hits
both alike. The physical limit is the machine's matrix-product rate: each row gives the
step's FLOPs (its matrix products: 3 x 2 L N G H (H_in + H)) per second, and that as a
fraction of ``torch.mm``'s rate on 1024 x 1024 matrices at the same thread count.
"""
from __future__ import annotations

import statistics
import time
from typing import Callable, Dict, List

import torch

from rnntrain import Recurrent
from rnntrain.core import compiled

# (cell, batch, T, hidden, input)
SHAPES = (("RNN", 32, 20, 64, 1), ("GRU", 32, 20, 64, 1), ("LSTM", 32, 20, 64, 1),
          ("RNN", 32, 100, 128, 128), ("GRU", 32, 100, 128, 128), ("LSTM", 32, 100, 128, 128),
          ("RNN", 256, 100, 256, 256), ("GRU", 256, 100, 256, 256), ("LSTM", 256, 100, 256, 256))
GATES = {"RNN": 1, "GRU": 3, "LSTM": 4}


def _round_robin(fns: Dict[str, Callable[[], None]], repeats: int, budget: float = 0.05) -> Dict[str, float]:
    """Median seconds per call of each function, timed in turns (calls per turn sized to
    about ``budget`` seconds)."""
    for f in fns.values():
        f()
    t0 = time.perf_counter()
    next(iter(fns.values()))()
    calls = max(1, int(budget / max(time.perf_counter() - t0, 1e-6)))
    times: Dict[str, List[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, f in fns.items():
            t = time.perf_counter()
            for _ in range(calls):
                f()
            times[k].append((time.perf_counter() - t) / calls)
    return {k: statistics.median(v) for k, v in times.items()}


def mm_rate() -> float:
    """torch.mm's FLOP/s on 1024 x 1024 float32 matrices at the current thread count."""
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    return 2 * 1024 ** 3 / _round_robin({"mm": lambda: torch.mm(a, b)}, 5)["mm"]


def measure(cell: str, batch: int, T: int, hidden: int, inputs: int, repeats: int) -> Dict[str, float]:
    torch.manual_seed(0)
    reference = getattr(torch.nn, cell)(inputs, hidden)
    ours = Recurrent(cell, inputs, hidden, path="compiled")
    ours.load_state_dict(reference.state_dict())
    x = torch.randn(T, batch, inputs)

    def step(module):
        def f():
            module.zero_grad(set_to_none=True)
            module(x)[0].sum().backward()
        return f

    t = _round_robin({"torch": step(reference), "compiled": step(ours)}, repeats)
    t["flops"] = 3 * 2 * T * batch * GATES[cell] * hidden * (inputs + hidden)
    return t


def run(quick: bool = False) -> str:
    if compiled.kernel() is None:
        return "skipped: the compiled kernel could not be built on this machine"
    repeats = 3 if quick else 9
    before = torch.get_num_threads()
    lines = [f"One training step (forward + backward of output.sum()), float32, torch "
             f"{torch.__version__}, median of {repeats} round-robin repeats. Speed-up = torch's "
             f"time / compiled time; GFLOP/s counts the step's matrix products; % mm = that "
             f"rate over torch.mm's (1024 x 1024) at the same thread count.", "",
             "| threads | cell | batch | T | hidden | torch ms | compiled ms | speed-up | "
             "torch GFLOP/s (% mm) | compiled GFLOP/s (% mm) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            peak = mm_rate()
            for cell, batch, T, hidden, inputs in SHAPES[:6] if quick else SHAPES:
                r = measure(cell, batch, T, hidden, inputs, repeats)
                rate = {k: r["flops"] / r[k] for k in ("torch", "compiled")}
                lines.append(f"| {threads} | {cell} | {batch} | {T} | {hidden} | {r['torch'] * 1e3:.3f} | "
                             f"{r['compiled'] * 1e3:.3f} | {r['torch'] / r['compiled']:.2f} | "
                             f"{rate['torch'] / 1e9:.1f} ({100 * rate['torch'] / peak:.0f} %) | "
                             f"{rate['compiled'] / 1e9:.1f} ({100 * rate['compiled'] / peak:.0f} %) |")
            lines.append(f"| {threads} | torch.mm 1024² | | | | | | | {peak / 1e9:.1f} (100 %) | |")
    finally:
        torch.set_num_threads(before)
    return "\n".join(lines)


if __name__ == "__main__":
    import argparse
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats, the smaller shapes")
    print(run(parser.parse_args().quick))

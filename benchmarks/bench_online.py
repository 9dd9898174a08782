"""Time and memory per step of the online gradient algorithms against hidden size n.

For an Elman network (tanh; CRBP: the locally recurrent cell) with N = 4 streams, input
size 1, float32 on CPU: seconds per time step of the sensitivity update (Jacobians +
influence update + the gradient c·M) and the bytes it carries (influence / rank-one
factors), against BPTT's seconds per step (forward + backward of a T = 50 sequence, / T)
and the bytes of activations it stores per step (saved tensors). The scaling exponent is
the slope of log(time) and log(memory) against log(n) over the largest three sizes.

RTRL's update ``M = D M + I`` is one batched matrix product; its FLOP rate at n = 64
(2·N·S²·P flops per step) is reported as a fraction of ``torch.mm``'s rate on a 1024²
product measured in the same run.

    python benchmarks/bench_online.py            # n = 8 .. 128 (RTRL, SnAp-2 to 128)
    python benchmarks/bench_online.py --quick    # n = 8 .. 32
"""
from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path
from typing import Dict, List

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from rnntrain.algorithms.online import ModelStep  # noqa: E402
from rnntrain.algorithms.rtrl import RTRLSensitivity  # noqa: E402
from rnntrain.algorithms.snap import SparseSensitivity, probe_patterns, snap_pattern  # noqa: E402
from rnntrain.algorithms.uoro import UOROSensitivity  # noqa: E402
from rnntrain.core import Recurrent  # noqa: E402

N, T_BPTT = 4, 50
ALGOS = ("bptt", "rtrl", "uoro", "snap1", "snap2", "crbp")
DENSE_CAP = 128  # largest n for RTRL and SnAp-2 (dense on a dense network): n⁴ time, n³ memory


def _sensitivity(name: str, fn):
    if name == "rtrl":
        return RTRLSensitivity(fn)
    if name == "uoro":
        return UOROSensitivity(fn, torch.Generator().manual_seed(0))
    D_nz, I_nz = probe_patterns(fn)
    k = {"snap1": 1, "snap2": 2, "crbp": None}[name]
    return SparseSensitivity(fn, snap_pattern(D_nz, I_nz, k), D_nz)


def _carried_bytes(sens) -> int:
    return sum(t.numel() * t.element_size() for t in sens.state_dict().values() if t is not None)


def time_online(name: str, n: int, steps: int) -> Dict[str, float]:
    rnn = Recurrent("LOCAL" if name == "crbp" else "RNN", 1, n)
    fn = ModelStep(rnn)
    sens = _sensitivity(name, fn)
    x = torch.randn(N, steps + 2, 1)
    s = torch.zeros(N, fn.S)
    sens.reset(N, s)
    c = torch.randn(N, fn.S)
    times = []
    with torch.no_grad():
        for t in range(steps + 2):
            start = time.perf_counter()
            s = sens.advance(fn.theta(), s, x[:, t])
            sens.gradient(c)
            times.append(time.perf_counter() - start)
    return {"seconds": statistics.median(times[2:]), "bytes": _carried_bytes(sens)}


def time_bptt(n: int, repeats: int) -> Dict[str, float]:
    rnn = Recurrent("RNN", 1, n, batch_first=True)
    x = torch.randn(N, T_BPTT, 1)
    saved = []

    def pack(t):
        saved.append(t.numel() * t.element_size())
        return t

    times = []
    for r in range(repeats + 1):
        saved.clear()
        start = time.perf_counter()
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            out, _ = rnn(x, path="step")  # the cell's step: what an online algorithm would call
        out.sum().backward()
        times.append(time.perf_counter() - start)
    return {"seconds": statistics.median(times[1:]) / T_BPTT, "bytes": sum(saved) / T_BPTT}


def flop_fraction(n: int = 64, repeats: int = 5) -> Dict[str, float]:
    """RTRL's D M + I at n against torch.mm on 1024 x 1024 (flops per second)."""
    fn = ModelStep(Recurrent("RNN", 1, n))
    S, P = fn.S, fn.P
    D, M, I = torch.randn(N, S, S), torch.randn(N, S, P), torch.randn(N, S, P)
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)

    def best(f):
        f()
        ts = []
        for _ in range(repeats):
            start = time.perf_counter()
            f()
            ts.append(time.perf_counter() - start)
        return min(ts)

    rtrl = 2 * N * S * S * P / best(lambda: torch.baddbmm(I, D, M))
    mm = 2 * 1024 ** 3 / best(lambda: torch.mm(a, b))
    return {"rtrl_gflops": rtrl / 1e9, "mm_gflops": mm / 1e9, "fraction": rtrl / mm}


def _slope(ns: List[int], ys: List[float]) -> float:
    ns, ys = ns[-3:], ys[-3:]
    return float(np.polyfit(np.log(ns), np.log(ys), 1)[0]) if len(ns) >= 2 else float("nan")


def main(quick: bool = False) -> str:
    sizes = (8, 16, 32) if quick else (8, 16, 32, 64, 128)
    steps = 3 if quick else 5
    rows: Dict[str, Dict[int, Dict[str, float]]] = {a: {} for a in ALGOS}
    for n in sizes:
        rows["bptt"][n] = time_bptt(n, steps)
        for name in ALGOS[1:]:
            if name in ("rtrl", "snap2") and n > DENSE_CAP:
                continue
            rows[name][n] = time_online(name, n, steps if n < 128 else 2)
    lines = [f"Per time step, Elman network (CRBP: locally recurrent), N = {N} streams, float32, "
             f"{torch.get_num_threads()} threads.", "",
             "| algorithm | " + " | ".join(f"n={n}" for n in sizes) + " | time exponent | memory exponent |",
             "|---|" + "---:|" * len(sizes) + "---:|---:|"]
    for name in ALGOS:
        r = rows[name]
        cells = [f"{r[n]['seconds'] * 1e3:.2f} ms / {r[n]['bytes'] / 1024:.0f} KiB" if n in r else "—"
                 for n in sizes]
        ns = [n for n in sizes if n in r]
        lines.append(f"| {name} | " + " | ".join(cells) +
                     f" | {_slope(ns, [r[n]['seconds'] for n in ns]):.2f} "
                     f"| {_slope(ns, [r[n]['bytes'] for n in ns]):.2f} |")
    f = flop_fraction(32 if quick else 64)
    lines += ["", f"RTRL's update D·M + I at n = {32 if quick else 64}: {f['rtrl_gflops']:.1f} GFLOP/s; "
                  f"torch.mm 1024²: {f['mm_gflops']:.1f} GFLOP/s; fraction {f['fraction']:.0%}."]
    return "\n".join(lines)


if __name__ == "__main__":
    print(main(quick="--quick" in sys.argv))

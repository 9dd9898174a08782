"""Time and memory per step of the online gradient algorithms against hidden size n.

For an Elman network (tanh; CRBP: the locally recurrent cell) with N = 4 streams, input
size 1, float32 on CPU, one torch thread: seconds per time step of the sensitivity update
(Jacobians + influence update + the gradient c·M) and the bytes it carries (influence /
rank-one factors), against BPTT's seconds per step (forward + backward of a T = 50
sequence, / T) and the bytes of activations it stores per step (saved tensors). Every time
is the median over repeated steps after warm-up.

Scaling exponents, two ways (the raw table is printed too):

- ``slope``: the least-squares slope of log(time) against log(n) over n >= FIT_FROM;
- ``k``: the exponent of ``t(n) = a + b·n^k`` fitted to every size, where ``a`` is the
  fixed per-call cost (a few dozen ATen calls and one call of the compiled products kernel
  per step; RTRL's was ``torch.func``'s dispatch, ~1 ms, before its Jacobians came from the
  kernel too) that flattens the slope at
  small n; ``k`` is the asymptotic exponent (RTRL: 4, UORO/SnAp-1/CRBP/BPTT: 2) once the
  sizes reach where ``b·n^k`` is comparable to ``a`` (hence n = 256 for the n² methods);
  it is printed only when ``b·n^k`` is at least half of the largest size's time.

For the cells the compiled kernel does not implement (layer-normalised LSTM, peephole LSTM,
CT-RNN), RTRL's step Jacobians D and I come from autograd through per-row weight copies
(``ModelStep._pullback``); they are timed against ``torch.func``'s ``vmap(jacrev)`` of the
same step (``StepFunction.jacobians``), interleaved, N = 4 streams.

RTRL's update ``M = D M + I`` is one batched GEMM written into a preallocated buffer
(``baddbmm_``). It is timed exactly as the algorithm runs it (its own buffers, shapes,
float32, layout, after real steps) at n = 64, interleaved with ``torch.mm`` on square
matrices of the same FLOP count and on 1024 x 1024, in the same process, 1 thread.

    python benchmarks/bench_online.py            # n = 8 .. 128 (n² methods and BPTT to 256)
    python benchmarks/bench_online.py --quick    # n = 8 .. 32
"""
from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Sequence

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from rnntrain.algorithms.online import ModelStep  # noqa: E402
from rnntrain.algorithms.rtrl import RTRLSensitivity  # noqa: E402
from rnntrain.algorithms.step_function import StepFunction  # noqa: E402
from rnntrain.algorithms.snap import SparseSensitivity, probe_patterns, snap_pattern  # noqa: E402
from rnntrain.algorithms.uoro import UOROSensitivity  # noqa: E402
from rnntrain.core import Recurrent  # noqa: E402

N, T_BPTT = 4, 50
ALGOS = ("bptt", "rtrl", "uoro", "snap1", "snap2", "crbp")
DENSE = ("rtrl", "snap2")  # dense influence on a dense network: n⁴ time, n³ memory
DENSE_CAP = 128  # largest n for RTRL and SnAp-2 (n = 256: 3 x 270 MB buffers, ~0.3 s a step)
WIDE = 256  # the extra size for the n² methods (their n² term passes the fixed cost here)
FIT_FROM = 32  # the slope is fitted over n >= FIT_FROM
BUDGET = 1.5  # seconds of measurement per (algorithm, n), at least MIN_REPS repeats
MIN_REPS, MAX_REPS, WARMUP = 3, 40, 2


def _median_time(step: Callable[[], None]) -> float:
    """Median seconds of ``step()`` after WARMUP calls (MIN_REPS..MAX_REPS repeats, ~BUDGET s)."""
    for _ in range(WARMUP):
        step()
    times: List[float] = []
    spent = 0.0
    while len(times) < MIN_REPS or (len(times) < MAX_REPS and spent < BUDGET):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
        spent += times[-1]
    return statistics.median(times)


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


def _online(name: str, n: int):
    """(fn, sens, step) for one algorithm at size n; step() advances one time step."""
    fn = ModelStep(Recurrent("LOCAL" if name == "crbp" else "RNN", 1, n))
    sens = _sensitivity(name, fn)
    gen = torch.Generator().manual_seed(n)
    box = {"s": torch.zeros(N, fn.S)}
    sens.reset(N, box["s"])
    c = torch.randn(N, fn.S, generator=gen)

    def step() -> None:
        x = torch.randn(N, 1, generator=gen)
        box["s"] = sens.advance(fn.theta(), box["s"], x)
        sens.gradient(c)

    return fn, sens, step


def time_online(name: str, n: int) -> Dict[str, float]:
    _, sens, step = _online(name, n)
    with torch.no_grad():
        seconds = _median_time(step)
    return {"seconds": seconds, "bytes": _carried_bytes(sens)}


def time_bptt(n: int) -> Dict[str, float]:
    rnn = Recurrent("RNN", 1, n, batch_first=True)
    x = torch.randn(N, T_BPTT, 1)
    saved: List[int] = []

    def pack(t):
        saved.append(t.numel() * t.element_size())
        return t

    def step() -> None:
        saved.clear()
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            out, _ = rnn(x, path="step")  # the cell's step: what an online algorithm would call
        out.sum().backward()

    seconds = _median_time(step)
    return {"seconds": seconds / T_BPTT, "bytes": sum(saved) / T_BPTT}


def rtrl_update_rate(n: int = 64, repeats: int = 25) -> Dict[str, float]:
    """RTRL's update as run (``I.baddbmm_(D, M)`` on its own buffers) against torch.mm.

    The operands are the algorithm's: M and the spare buffer of an RTRLSensitivity after
    real steps, D from its Jacobians. Each repeat times the update, an mm of the same FLOP
    count (square, side m = (N·S²·P)^(1/3)) and a 1024² mm, in turn; medians."""
    fn, sens, step = _online("rtrl", n)
    with torch.no_grad():
        for _ in range(3):
            step()
        _, D, _ = fn.jacobians(fn.theta(), torch.randn(N, fn.S), torch.randn(N, 1))
        M, buf = sens.M, sens._spare  # (N, S, P) contiguous float32, the algorithm's layout
        assert M.is_contiguous() and buf.is_contiguous() and M.dtype == torch.float32
        S, P = fn.S, fn.P
        flops = 2 * N * S * S * P
        m = round((N * S * S * P) ** (1 / 3))
        a, b, c = torch.randn(m, m), torch.randn(m, m), torch.empty(m, m)
        A, B, C = torch.randn(1024, 1024), torch.randn(1024, 1024), torch.empty(1024, 1024)
        ops = {"update": lambda: buf.baddbmm_(D, M), "mm_same": lambda: torch.mm(a, b, out=c),
               "mm_1024": lambda: torch.mm(A, B, out=C)}
        for f in ops.values():
            for _ in range(WARMUP):
                f()
        times: Dict[str, List[float]] = {k: [] for k in ops}
        for _ in range(repeats):
            for k, f in ops.items():
                start = time.perf_counter()
                f()
                times[k].append(time.perf_counter() - start)
        step_seconds = _median_time(step)
    med = {k: statistics.median(v) for k, v in times.items()}
    rate = {"update": flops / med["update"], "mm_same": 2 * m ** 3 / med["mm_same"],
            "mm_1024": 2 * 1024 ** 3 / med["mm_1024"]}
    return {"n": n, "m": m, "gflop": flops / 1e9, "update_ms": med["update"] * 1e3,
            "step_ms": step_seconds * 1e3, **{f"{k}_gflops": v / 1e9 for k, v in rate.items()},
            "fraction_same": rate["update"] / rate["mm_same"], "fraction_1024": rate["update"] / rate["mm_1024"]}


def nonkernel_jacobians(cell: str, n: int, repeats: int = 15) -> Dict[str, float]:
    """Seconds per call of the step's Jacobians (D, I) for a cell without a kernel: rnntrain's
    (autograd) and torch.func's jacrev of the same step, interleaved medians; their largest
    difference (float32)."""
    torch.manual_seed(0)
    fn = ModelStep(Recurrent(cell, 1, n))
    theta, s, x = fn.theta(), torch.randn(N, fn.S), torch.randn(N, 1)
    ours, theirs = fn.jacobians(theta, s, x), StepFunction.jacobians(fn, theta, s, x)
    diff = max(float((a - b).abs().max()) for a, b in zip(ours, theirs))
    times: Dict[str, List[float]] = {"autograd": [], "jacrev": []}
    for _ in range(repeats):
        for name, call in (("autograd", fn.jacobians), ("jacrev", lambda *a: StepFunction.jacobians(fn, *a))):
            t = time.perf_counter()
            call(theta, s, x)
            times[name].append(time.perf_counter() - t)
    return {**{k: statistics.median(v) for k, v in times.items()}, "diff": diff}


def slope(ns: Sequence[int], ys: Sequence[float], start: int = FIT_FROM) -> float:
    """Least-squares slope of log y against log n over n >= start (nan below 2 points)."""
    pts = [(n, y) for n, y in zip(ns, ys) if n >= start]
    if len(pts) < 2:
        return float("nan")
    x, y = np.log([p[0] for p in pts]), np.log([p[1] for p in pts])
    return float(np.polyfit(x, y, 1)[0])


def overhead_fit(ns: Sequence[int], ys: Sequence[float]) -> Dict[str, float]:
    """``t = a + b·n^k`` (a, b >= 0) with the least relative squared error; k on a 0.01 grid."""
    if len(ns) < 4:
        return {"k": float("nan"), "a": float("nan"), "tail": float("nan")}
    n, y = np.asarray(ns, float), np.asarray(ys, float)
    best = (np.inf, float("nan"), float("nan"))
    for k in np.arange(0.0, 6.0001, 0.01):
        X = np.stack([np.ones_like(n), n ** k], 1) / y[:, None]  # rows scaled: relative error
        coef, *_ = np.linalg.lstsq(X, np.ones_like(y), rcond=None)
        if (coef < 0).any():  # a clamped at 0: the pure power law
            coef = np.array([0.0, float(np.sum(n ** k / y) / np.sum((n ** k / y) ** 2))])
        err = float(np.sum((X @ coef - 1) ** 2))
        if err < best[0]:
            best = (err, float(k), float(coef[0]))
    # share of the largest size's time that is b·n^k: below 1/2 the fixed cost dominates
    # everywhere and k is not determined by the data
    return {"k": best[1], "a": best[2], "tail": 1 - best[2] / float(y[-1])}


def _k(fit: Dict[str, float]) -> str:
    if not fit["tail"] >= 0.5:
        return f"— (fixed {fit['a'] * 1e3:.2f} ms dominates)" if fit["a"] == fit["a"] else "—"
    return f"{fit['k']:.2f} (a = {fit['a'] * 1e3:.2f} ms)"


def main(quick: bool = False) -> str:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a shared machine: ratios at 1 thread are what is comparable
    try:
        return _main(quick)
    finally:
        torch.set_num_threads(threads)


def _main(quick: bool) -> str:
    sizes = (8, 16, 32) if quick else (8, 16, 32, 64, 128, WIDE)
    start = 16 if quick else FIT_FROM
    started = time.perf_counter()
    rows: Dict[str, Dict[int, Dict[str, float]]] = {a: {} for a in ALGOS}
    for n in sizes:
        for name in ALGOS:
            if name in DENSE and n > DENSE_CAP:
                continue
            rows[name][n] = time_bptt(n) if name == "bptt" else time_online(name, n)
    lines = [f"Per time step, Elman network (CRBP: locally recurrent), N = {N} streams, float32, "
             f"1 thread (median over repeated steps). Cells: time / carried memory "
             f"(BPTT: activations stored per step). RTRL and SnAp-2 stop at n = {DENSE_CAP} "
             f"(n³ memory: 3 x 270 MB at n = 256).", "",
             "| algorithm | " + " | ".join(f"n={n}" for n in sizes) +
             f" | time slope n≥{start} | time k of a + b·nᵏ (a) | memory slope n≥{start} |",
             "|---|" + "---:|" * len(sizes) + "---:|---:|---:|"]
    for name in ALGOS:
        r = rows[name]
        cells = [f"{r[n]['seconds'] * 1e3:.2f} ms / {r[n]['bytes'] / 1024:.0f} KiB" if n in r else "—"
                 for n in sizes]
        ns = [n for n in sizes if n in r]
        ts, bs = [r[n]["seconds"] for n in ns], [r[n]["bytes"] for n in ns]
        fit = overhead_fit(ns, ts)
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {slope(ns, ts, start):.2f} "
                     f"| {_k(fit)} | {slope(ns, bs, start):.2f} |")
    nf = 32 if quick else 64
    f = rtrl_update_rate(nf)
    lines += ["",
              f"RTRL's update M = D·M + I at n = {nf} as run (baddbmm_ into its buffer, (N, S, P) = "
              f"({N}, {nf}, {f['gflop'] * 1e9 / (2 * N * nf * nf):.0f}), {f['gflop']:.3f} GFLOP): "
              f"{f['update_ms']:.2f} ms, {f['update_gflops']:.1f} GFLOP/s = "
              f"{f['fraction_same']:.0%} of torch.mm at the same FLOP count ({f['m']}², "
              f"{f['mm_same_gflops']:.1f} GFLOP/s), {f['fraction_1024']:.0%} of torch.mm 1024² "
              f"({f['mm_1024_gflops']:.1f} GFLOP/s); interleaved medians, 1 thread. The update is "
              f"{f['update_ms'] / f['step_ms']:.0%} of RTRL's whole step ({f['step_ms']:.2f} ms) "
              f"at this n; the rest is the Jacobians D, I (n³, one call of the compiled products kernel).",
              "", f"Cells without the compiled kernel: RTRL's step Jacobians D, I (N = {N}), autograd through "
              "per-row weight copies against torch.func's vmap(jacrev) of the same step, interleaved medians:", "",
              "| cell | n | autograd | jacrev | ratio | max difference |", "|---|---:|---:|---:|---:|---:|"]
    for cell in ("ln_lstm", "peephole", "ctrnn"):
        for n in ((16, 32) if quick else (16, 32, 64)):
            j = nonkernel_jacobians(cell, n)
            lines.append(f"| {cell} | {n} | {j['autograd'] * 1e3:.2f} ms | {j['jacrev'] * 1e3:.2f} ms | "
                         f"{j['autograd'] / j['jacrev']:.2f}x | {j['diff']:.1e} |")
    lines.append(f"\n(benchmark time {time.perf_counter() - started:.0f} s)")
    return "\n".join(lines)


if __name__ == "__main__":
    print(main(quick="--quick" in sys.argv))

"""Throughput of ``rnntrain.Recurrent`` (fused and step paths) against torch's modules.

Measures sequence elements per second, batch * T / (seconds of one forward + backward
of ``output.sum()``), float32 on CPU, input size = hidden size. The three
implementations of one row share weights and are timed round-robin (one call of each
per repeat, after a warm-up), so load from other processes hits them alike; the
reported time is the median over repeats.
"""
from __future__ import annotations

import statistics
import time
from typing import Dict, List

import torch

from rnntrain import Recurrent

SHAPES = ((32, 100, 128), (256, 100, 256))  # (batch, T, hidden)
CELLS = ("RNN", "LSTM", "GRU")
TORCH = {"RNN": torch.nn.RNN, "LSTM": torch.nn.LSTM, "GRU": torch.nn.GRU}


def _forward_backward(module: torch.nn.Module, x: torch.Tensor) -> float:
    """Seconds of one forward + backward of output.sum()."""
    module.zero_grad(set_to_none=True)
    start = time.perf_counter()
    output, _ = module(x)  # (N, T, H)
    output.sum().backward()
    return time.perf_counter() - start


def measure(cell: str, batch: int, T: int, hidden: int, repeats: int) -> Dict[str, float]:
    """Elements per second of torch, fused and step on one shape."""
    gen = torch.Generator().manual_seed(0)
    reference = TORCH[cell](hidden, hidden, batch_first=True)
    modules = {"torch": reference}
    for path in ("fused", "step"):
        modules[path] = Recurrent(cell, hidden, hidden, batch_first=True, path=path)
        modules[path].load_state_dict(reference.state_dict())
    x = torch.randn(batch, T, hidden, generator=gen)  # (N, T, H_in)
    times: Dict[str, List[float]] = {name: [] for name in modules}
    for i in range(repeats + 2):  # the first two rounds warm up
        for name, module in modules.items():
            seconds = _forward_backward(module, x)
            if i >= 2:
                times[name].append(seconds)
    return {name: batch * T / statistics.median(ts) for name, ts in times.items()}


def run(quick: bool = False) -> str:
    """The markdown table of every cell and shape."""
    repeats = 3 if quick else 10
    lines = [f"Forward + backward of output.sum(), float32, torch {torch.__version__}, "
             f"{torch.get_num_threads()} threads, median of {repeats} repeats; throughput in "
             f"thousand elements (batch x T) per second; ratios are time ratios "
             f"(> 1: slower than torch).", "",
             "| cell | batch | T | hidden | torch | fused | step | fused/torch | step/torch |",
             "|---|---|---|---|---|---|---|---|---|"]
    for batch, T, hidden in SHAPES:
        for cell in CELLS:
            r = measure(cell, batch, T, hidden, repeats)
            lines.append(f"| {cell} | {batch} | {T} | {hidden} | {r['torch'] / 1e3:.1f} | "
                         f"{r['fused'] / 1e3:.1f} | {r['step'] / 1e3:.1f} | "
                         f"{r['torch'] / r['fused']:.2f} | {r['torch'] / r['step']:.2f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    import argparse
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    print(run(parser.parse_args().quick))

"""Data-parallel BPTT on torchrun: training throughput of one process against two on this
machine, in sequence-steps per second (work in forward-step equivalents / 3: a BPTT step is a
forward and a backward). The workload: an LSTM of 128 units on 20,000 rows of the sine, windows
of 50 steps, batches of 256, 2 epochs, float32. One process is timed with 1 and with 2 intra-op
threads, two processes with 1 thread each (the same cores). Time is the training loop
(summary.json's seconds), the median of the repeats, alternated."""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ARGS = ["train", "--cell", "lstm", "--hidden", "128", "--window", "50", "--batch-size", "256", "--epochs", "2",
        "--set", "task.length=20000", "--set", "train.eval_every=2", "--quiet"]
VARIANTS = {"1 process, 1 thread": (1, 1), "1 process, 2 threads": (1, 2), "2 processes, 1 thread each": (2, 1)}


def _run(out: Path, processes: int, threads: int) -> float:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    head = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes)] \
        if processes > 1 else [sys.executable]
    subprocess.run([*head, "-m", "rnntrain", *ARGS, "--set", f"threads={threads}", "--out", str(out)],
                   env=env, check=True, capture_output=True)
    summary = json.loads((out / "summary.json").read_text())
    return summary["work"] / 3 / summary["seconds"]


def run(quick: bool = False) -> str:
    repeats = 1 if quick else 3
    rates = {name: [] for name in VARIANTS}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(repeats):
            for name, (processes, threads) in VARIANTS.items():
                rates[name].append(_run(Path(tmp) / f"{processes}-{threads}-{i}", processes, threads))
    base = statistics.median(rates["1 process, 1 thread"])
    lines = [f"LSTM 128 units, windows of 50, batch 256 (128 per process with two), median of {repeats}.", "",
             "| processes | sequence-steps / s | vs 1 process, 1 thread |", "|---|---:|---:|"]
    for name, values in rates.items():
        m = statistics.median(values)
        lines.append(f"| {name} | {m:,.0f} | {m / base:.2f}x |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(run("--quick" in sys.argv))

"""Run every benchmark, print the markdown tables and write them to bench-results/latest.md.

    .venv/bin/python benchmarks/run_all.py            # full: 5 seeds, 10 repeats (~5 min idle)
    .venv/bin/python benchmarks/run_all.py --quick    # 1 seed, 3 repeats (~1 min idle)

Wall times depend on what else runs on the machine; the load average before and after
is printed so that a noisy run can be recognised (and rerun).
"""
from __future__ import annotations

import argparse
import os
import platform
import time
import warnings
from pathlib import Path

import importlib

import torch

# (title, module, function(quick) -> markdown), in the order they run.
SECTIONS = [
    ("Throughput: rnntrain.Recurrent vs torch.nn", "bench_throughput", "run"),
    ("The compiled recurrent kernel vs torch's, 1 and 2 threads", "bench_kernel", "run"),
    ("Cell variants and regularisers vs the plain LSTM and hand-written loops", "bench_cells", "run"),
    ("Seed PyTorch program vs rnntrain", "bench_seed", "run"),
    ("Variable-length batches vs equal-length batches", "bench_ragged", "run"),
    ("Attention encoder-decoders vs hand-written PyTorch", "bench_seq2seq", "run"),
    ("Online gradients: RTRL, UORO, SnAp, CRBP vs BPTT", "bench_online", "main"),
    ("Population search vs pygad and pyswarms", "bench_population", "main"),
    ("Echo state networks vs reservoirpy", "bench_esn", "main"),
    ("Hessian-free optimisation", "bench_hf", "main"),
    ("TensorBoard tracking overhead", "bench_tracking", "run"),
    ("Data-parallel BPTT: one process vs two (torchrun)", "bench_ddp", "run"),
    ("The trainer's own cost per round (GA generations)", "bench_trainer", "run"),
    ("Dynamics analysis", "bench_analysis", "main"),
]

RESULTS = Path(__file__).resolve().parent.parent / "bench-results" / "latest.md"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 seed, fewer repeats: a fast check")
    parser.add_argument("--only", nargs="*", metavar="MODULE",
                        help="run only these sections (module names, e.g. bench_seed bench_esn)")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", category=UserWarning)  # keep the tables readable
    start, load = time.perf_counter(), os.getloadavg()[0]
    sections = [f"# rnntrain benchmarks{' (quick)' if args.quick else ''}\n\n"
                f"{time.strftime('%Y-%m-%d %H:%M')}, torch {torch.__version__}, "
                f"{os.cpu_count()} CPUs, {torch.get_num_threads()} torch threads by default, "
                f"Python {platform.python_version()}"]
    for title, module, function in SECTIONS:
        if args.only and module not in args.only:
            continue
        try:
            run = getattr(importlib.import_module(module), function)
        except ModuleNotFoundError as e:  # a section whose reference tool is not installed
            sections.append(f"## {title}\n\nskipped: {e} (make bench installs the bench extra)")
            continue
        t0 = time.perf_counter()
        print(f"running {module} ...", flush=True)
        sections.append(f"## {title}\n\n{run(args.quick)}\n\n({time.perf_counter() - t0:.0f} s)")
    after = os.getloadavg()[0]
    cpus = os.cpu_count() or 1  # the benchmark itself adds up to `cpus` to the load after
    busy = load > 0.5 * cpus or after > cpus + 0.5
    sections.append(f"Total {time.perf_counter() - start:.0f} s; load average {load:.2f} before, "
                    f"{after:.2f} after" + (": other processes were running, so the timings "
                    "(multi-threaded ones most) are unreliable; rerun on an idle machine." if busy else "."))
    text = "\n\n".join(sections) + "\n"
    print(text)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(text)
    print(f"written to {RESULTS}")


if __name__ == "__main__":
    main()

r"""Online learning on a stream whose dynamics change: the damped driven oscillator whose
drive (amplitude, frequency) changes every 1000 steps (``tasks/stream.py``,
series ``oscillator-switch``). One stream, one pass, the network predicts the next (x, v, F)
at every step and is updated at every step (truncated BPTT: every k steps); the curve is
the online loss — each prediction's error before the update that uses it — smoothed over
100 steps. RTRL, UORO and SnAp-1 against truncated BPTT with k = 1, 4, 16.

    python -m rnntrain.experiments.online_stream --out docs/figures/online_stream.png
"""
from __future__ import annotations

import argparse
from typing import Dict, List

import numpy as np
import torch

from ..algorithms import Context, get_algorithm
from ..config.run import load_config
from ..training.build import make_model, make_task

RUNS = [("rtrl", {}), ("uoro", {}), ("snap1", {}),
        ("bptt", {"truncation": 1}), ("bptt", {"truncation": 4}), ("bptt", {"truncation": 16})]


def run_one(name: str, options: Dict, *, length: int, hidden: int, lr: float, seed: int = 0) -> List[float]:
    config = load_config(base={"task.kind": "stream", "task.length": length, "task.seq_len": 48,
                               "task.split": [1.0], "model.hidden": hidden, "optim.lr": lr,
                               "algorithm.name": name, "train.batch_size": 1, "seed": seed,
                               **{f"algorithm.{k}": v for k, v in options.items()}})
    task = make_task(config)
    model = make_model(config, task.spec)
    algo = get_algorithm(name)(Context(model, task, config.optim, 1, 1,
                                       torch.Generator().manual_seed(seed)), config.algorithm)
    losses: List[float] = []
    per_update = options.get("truncation", 1)
    for batch in task.batches("train", 1):
        if name == "bptt":
            algo.ctx.task = _OneBatch(task, batch)  # BPTT runs whole rounds: give it this chunk alone
            algo.run_round(lambda loss: losses.extend([loss] * per_update))
        else:
            algo.run_batch(batch, on_step=losses.append)
    return losses


class _OneBatch:
    """The task, handing out one given batch (lets BPTT run its own loop on one chunk)."""

    def __init__(self, task, batch) -> None:
        self.task, self.batch, self.spec = task, batch, task.spec

    def batches(self, split, batch_size, *, generator=None):
        yield self.batch

    def loss(self, outputs, batch):
        return self.task.loss(outputs, batch)


def smooth(ys: List[float], w: int = 100) -> np.ndarray:
    y = np.asarray(ys, dtype=np.float64)
    return np.convolve(y, np.ones(w) / w, mode="valid")


def main(argv=None) -> Dict[str, float]:
    p = argparse.ArgumentParser(description="online learning on a stream with changing dynamics")
    p.add_argument("--out", default="docs/figures/online_stream.png")
    p.add_argument("--length", type=int, default=4000)
    p.add_argument("--hidden", type=int, default=16)
    p.add_argument("--lr", type=float, default=3e-3)
    a = p.parse_args(argv)
    curves = {}
    for name, opts in RUNS:
        label = name.upper() if name != "bptt" else f"truncated BPTT k={opts['truncation']}"
        curves[label.replace("SNAP1", "SnAp-1")] = run_one(name, opts, length=a.length, hidden=a.hidden, lr=a.lr)

    import matplotlib
    matplotlib.use("Agg")
    from ..reporting.plots import plt, save

    fig, ax = plt.subplots(figsize=(9, 4.5))
    for label, ys in curves.items():
        ax.plot(np.arange(len(smooth(ys))) + 100, smooth(ys), label=label, lw=1.2,
                ls="--" if "BPTT" in label else "-")
    for x in range(1000, a.length, 1000):
        ax.axvline(x, color="grey", lw=0.8, ls=":")
    ax.set_yscale("log")
    ax.set_xlabel("time step (dotted: the drive changes)")
    ax.set_ylabel("online MSE (scaled), 100-step mean")
    ax.set_title(f"Online learning on the switching oscillator (Elman, n={a.hidden}, Adam lr={a.lr:g})")
    ax.legend(ncol=2, fontsize=8)
    save(fig, a.out)
    summary = {}
    for label, ys in curves.items():
        summary[label] = float(np.mean(ys[-1000:]))
        print(f"{label:22s} mean online loss over the last 1000 steps {summary[label]:.4f}; "
              f"over all {len(ys)} steps {np.mean(ys):.4f}")
    return summary


if __name__ == "__main__":
    main()

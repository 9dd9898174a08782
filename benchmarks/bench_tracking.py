"""The cost of TensorBoard tracking on a small run: the seed example (100 epochs of a 64-unit
Elman network on the sine), with and without ``monitor.tensorboard_every = 1`` (and with
histograms every round too), alternated, each the median of its repeats. The time is the
training loop (``summary["seconds"]``: rounds, validation, monitors, checkpoints)."""
from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

import rnntrain

VARIANTS = {"off": {}, "scalars": {"monitor.tensorboard_every": 1},
            "scalars + histograms": {"monitor.tensorboard_every": 1, "monitor.histograms_every": 1}}


def run(quick: bool = False) -> str:
    repeats = 2 if quick else 5
    seconds = {name: [] for name in VARIANTS}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(repeats):
            for name, keys in VARIANTS.items():
                config = rnntrain.load_config(base={"seed": i, "threads": 1, **keys})
                out = Path(tmp) / f"{name}-{i}".replace(" ", "")
                seconds[name].append(rnntrain.train(config, out).summary["seconds"])
    base = statistics.median(seconds["off"])
    lines = [f"The seed example, 100 epochs, 1 thread, median of {repeats}; overhead against no tracking.", "",
             "| tracking | loop seconds | overhead |", "|---|---:|---:|"]
    for name, values in seconds.items():
        m = statistics.median(values)
        lines.append(f"| {name} | {m:.2f} | {(m / base - 1) * 100:+.1f}% |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(run())

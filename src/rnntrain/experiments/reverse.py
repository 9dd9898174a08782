r"""Why attention exists: reversing strings with an encoder-decoder, with and without it.

Without attention the decoder sees the source only through the encoder's final state, a
fixed-size summary that must hold every letter; with attention it looks back at the state
of the letter it needs (for reversal, source position S - t at output step t). Both models
(same cell, width, data, epochs, seed) train on random strings of 1..``--longest`` letters
(the ``reverse`` data set); each is then scored on fresh strings of every length (exact
match: the whole reversal right), giving the accuracy-versus-length curve::

    python -m rnntrain.experiments.reverse --longest 24 --out docs/figures/reverse_attention.png
"""
from __future__ import annotations

import argparse
import time
from typing import Dict, List

import rnntrain
from rnntrain.tasks.labelled.seq2seq import reverse_strings


def curve(attention: str, longest: int, *, epochs: int, size: int, hidden: int, seed: int,
          probes: int = 200) -> Dict[str, object]:
    """Train one model; exact match on ``probes`` fresh strings of each length 1..longest."""
    config = rnntrain.load_config(base={
        "task.kind": "seq2seq", "task.dataset": "reverse", "task.min_length": 1,
        "task.max_string": longest, "task.size": size, "model.attention": attention,
        "model.hidden": hidden, "train.epochs": epochs, "seed": seed})
    t0 = time.perf_counter()
    run = rnntrain.train(config)
    seconds = time.perf_counter() - t0
    accuracy: List[float] = []
    for n in range(1, longest + 1):
        probe = reverse_strings(probes, seed + 1000 + n, n, n)  # strings never seen in training (seeds differ)
        texts = ["".join(x) for x in probe.xs]
        rows = run.task.translate(run.model, texts)
        accuracy.append(sum(r["prediction"] == t[::-1] for r, t in zip(rows, texts)) / len(texts))
    return {"attention": attention, "accuracy": accuracy, "seconds": seconds,
            "test_exact_match": run.summary["metrics"]["test"]["exact_match"]}


def plot(results: List[Dict[str, object]], path: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    from ..reporting.plots import plt, save

    fig, ax = plt.subplots(figsize=(7, 4))
    for r in results:
        acc = r["accuracy"]
        ax.plot(range(1, len(acc) + 1), acc, marker="o", ms=3,
                label=f"attention: {r['attention']} ({r['seconds']:.0f} s)")
    ax.set_xlabel("string length")
    ax.set_ylabel("exact match on fresh strings")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title("Reversing strings: an encoder-decoder with and without attention")
    ax.legend()
    save(fig, path)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--longest", type=int, default=24)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--size", type=int, default=8000)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="PNG of the curves")
    a = p.parse_args(argv)
    results = [curve(att, a.longest, epochs=a.epochs, size=a.size, hidden=a.hidden, seed=a.seed)
               for att in ("none", "additive")]
    print("| length | " + " | ".join(f"attention {r['attention']}" for r in results) + " |")
    print("|---|" + "---|" * len(results))
    for n in range(a.longest):
        print(f"| {n + 1} | " + " | ".join(f"{r['accuracy'][n]:.2f}" for r in results) + " |")
    for r in results:
        print(f"attention {r['attention']}: {r['seconds']:.1f} s of training, test exact match "
              f"{r['test_exact_match']:.3f}")
    if a.out:
        plot(results, a.out)


if __name__ == "__main__":
    main()

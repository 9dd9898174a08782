"""Variable-length batches against equal-length batches of the same number of tokens.

A training step (forward, loss at each sequence's last valid step, backward) of a
bidirectional model on a batch of N sequences with lengths drawn from U(L/4, L), against a
batch of equal-length sequences holding the same number of tokens (N sequences of the
mean length). Three ways to run the ragged batch: rnntrain's model path (``lengths=``,
final state not needed: per-layer padded kernel), rnntrain's ``Recurrent`` asked for final
states (an LSTM then packs), and torch's own packed path (``pack_padded_sequence``; slow
on CPU, pytorch#149194). Round-robin, median of repeats.

Then what a user runs: a training epoch of ``rnntrain train --task classify`` on 1024
sequences of lengths U(L/4, L) (batches bucketed by length, as the labelled tasks hand them
out) against an epoch on 1024 sequences of the mean length (the same tokens). Goal: ragged
/ equal <= 1.5x.
"""
from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

import torch
from torch.nn.utils.rnn import pack_padded_sequence

from rnntrain import Recurrent

SHAPES = ((32, 29, 12, 64), (32, 100, 16, 128))  # (N, L, F, H): JapaneseVowels-like, longer


def _step(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def run(quick: bool = False) -> str:
    repeats = 5 if quick else 15
    torch.set_num_threads(1)
    rows = ["| cell | (N, L, F, H) | equal-length ms | rnntrain ragged ms | ratio | ragged + final state ms | torch packed ms | torch packed ratio |",
            "|---|---|---|---|---|---|---|---|"]
    for mode in ("GRU", "LSTM"):
        for N, L, F, H in SHAPES:
            g = torch.Generator().manual_seed(0)
            lengths = torch.randint(L // 4, L + 1, (N,), generator=g)
            mean = int(lengths.float().mean().round())
            ours = Recurrent(mode, F, H, batch_first=True, bidirectional=True)
            ref = getattr(torch.nn, mode)(F, H, batch_first=True, bidirectional=True)
            ref.load_state_dict(ours.state_dict())
            x = torch.randn(N, L, F, generator=g)
            x_eq = torch.randn(N, mean, F, generator=g)

            def equal():
                out, _ = ours(x_eq)
                out[:, -1].sum().backward()

            def ragged(final_state=False):
                out, _ = ours(x, lengths=lengths, final_state=final_state)
                out.sum().backward()

            def packed():
                out, _ = ref(pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False))
                out.data.sum().backward()

            fns = {"equal": equal, "ragged": ragged, "final": lambda: ragged(True), "packed": packed}
            for f in fns.values():
                f()
            times = {k: [] for k in fns}
            for _ in range(repeats):
                for k, f in fns.items():
                    times[k].append(_step(f))
            ms = {k: statistics.median(v) * 1e3 for k, v in times.items()}
            rows.append(f"| {mode} | ({N}, {L}, {F}, {H}) | {ms['equal']:.2f} | {ms['ragged']:.2f} | "
                        f"{ms['ragged'] / ms['equal']:.2f}x | {ms['final']:.2f} | {ms['packed']:.2f} | "
                        f"{ms['packed'] / ms['equal']:.2f}x |")
    return "\n".join(rows) + "\n\n" + epochs(quick)


def _epoch_seconds(path: Path, cell: str, hidden: int, epochs: int) -> float:
    import rnntrain
    config = rnntrain.load_config(base={"task.kind": "classify", "task.data": str(path), "task.split": [1.0],
                                        "model.cell": cell, "model.hidden": hidden, "train.epochs": epochs,
                                        "threads": 1})
    return rnntrain.train(config).summary["seconds"] / epochs


def epochs(quick: bool = False) -> str:
    rows = ["| cell | (sequences, L, F, H) | equal-length epoch s | ragged epoch s (bucketed) | ratio |",
            "|---|---|---|---|---|"]
    n, e = 1024, (1 if quick else 3)
    for cell in ("gru", "lstm"):
        for L, F, H in ((29, 12, 64), (100, 16, 128)):
            rng = np.random.default_rng(0)
            lengths = rng.integers(L // 4, L + 1, n)
            mean = int(round(lengths.mean()))
            with tempfile.TemporaryDirectory() as tmp:
                ragged, equal = Path(tmp) / "ragged.npz", Path(tmp) / "equal.npz"
                y = rng.integers(0, 4, n)
                np.savez(ragged, X=rng.standard_normal((n, L, F)), lengths=lengths, y=y)
                np.savez(equal, X=rng.standard_normal((n, mean, F)), y=y)
                t_eq = min(_epoch_seconds(equal, cell, H, e) for _ in range(2))
                t_rg = min(_epoch_seconds(ragged, cell, H, e) for _ in range(2))
            rows.append(f"| {cell} | ({n}, {L}, {F}, {H}) | {t_eq:.2f} | {t_rg:.2f} | {t_rg / t_eq:.2f}x |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(run())

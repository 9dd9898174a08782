"""Variable-length batches against equal-length batches of the same number of tokens.

A training step (forward, loss at each sequence's last valid step, backward) of a
bidirectional model on a batch of N sequences with lengths drawn from U(L/4, L), against a
batch of equal-length sequences holding the same number of tokens (N sequences of the
mean length). Three ways to run the ragged batch: rnntrain's model path (``lengths=``,
final state not needed: per-layer padded kernel), rnntrain's ``Recurrent`` asked for final
states (an LSTM then packs), and torch's own packed path (``pack_padded_sequence``; slow
on CPU, pytorch#149194). Goal: ragged / equal <= 1.5x. Round-robin, median of repeats.
"""
from __future__ import annotations

import statistics
import time

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
    return "\n".join(rows)


if __name__ == "__main__":
    print(run())

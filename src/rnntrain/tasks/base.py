"""The task protocol: a task owns its data, its loss and its metrics; models don't know tasks.

A task hands out data in the shape a training algorithm asks for (:meth:`Task.batches`),
computes the loss of a model's outputs, and evaluates any model the same way whatever
algorithm produced its weights (that is what makes side-by-side comparison honest).

The model calling convention every task relies on::

    outputs, state = model(inputs, state, lengths=batch.lengths)   # state None = zeros

with ``inputs`` of shape (N, L, F) (float features) or (N, L) (token ids), ``lengths`` (N,)
the valid steps of each sequence (None: all L), and ``outputs`` (N, O) for many-to-one
tasks (read at each sequence's last valid step) or (N, L, O) for many-to-many tasks.
The loss sees the whole batch, ``task.loss(outputs, batch)``, so per-step losses ignore
padding and CTC gets its input and label lengths.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

import torch
from torch import Tensor
from torch.func import vmap

from ..core.lengths import valid_mask

SPLITS = ("train", "val", "test")
# the ids of a token vocabulary's special symbols (labelled tasks' vocabularies; an
# encoder-decoder's targets start at START_ID and end with STOP_ID)
PAD_ID, UNK_ID, START_ID, STOP_ID = 0, 1, 2, 3
# metrics tasks report where larger is better (every other one: smaller is better); the
# trainer's best round (train.select) reads them the right way round
HIGHER_IS_BETTER = frozenset({"accuracy", "balanced_accuracy", "macro_f1", "exact_match", "bleu", "r2",
                              "token_accuracy"})


def mse(outputs: Tensor, targets: Tensor) -> Tensor:
    """Mean squared error. Written out rather than ``F.mse_loss``, whose double backward
    fails under ``torch.func.jvp`` ("ZeroTensors are immutable"), which Hessian-free's
    Gauss-Newton products take of every task's loss."""
    return torch.square(outputs - targets).mean()


@contextmanager
def evaluating(model):
    """no_grad + eval mode, restoring the model's training flag afterwards."""
    was_training = getattr(model, "training", False)
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


@dataclass(frozen=True)
class TaskSpec:
    """What a model must look like to solve the task."""

    input_size: int  # features per step, or vocabulary size when ``tokens``
    output_size: int  # outputs per prediction (classes for token targets)
    tokens: bool = False  # inputs are token ids (N, L) rather than features (N, L, F)
    per_step: bool = False  # many-to-many (a target at every step) vs many-to-one (last step)
    # targets line up with the steps (or are one per sequence); False for an unaligned label
    # sequence (CTC), whose loss needs the whole sequence at once: no truncation, no
    # per-step credit (online algorithms), no closed-form readout
    aligned: bool = True
    # the targets are a sequence of their own, emitted by a decoder step by step (an
    # encoder-decoder); output_size is then per decoder step: the target vocabulary when
    # ``target_tokens``, else the values per step
    decoder: bool = False
    target_tokens: bool = False
    # the outputs parametrise a predictive distribution (a probabilistic forecast head):
    # the loss is a likelihood or pinball loss, so closed-form least-squares readouts and
    # Gauss-Newton curvature do not apply
    distribution: bool = False
    # the last input feature is each step's duration Δt (irregular sampling; what a timed
    # continuous-time cell integrates over)
    time_input: bool = False


@dataclass
class DecoderInputs:
    """What an encoder-decoder's decoder reads while it is trained: the targets shifted right.

    inputs:  (N, T) long ids ``<s>, y_1 .. y_{T-1}`` (token targets) or (N, T, C) values
        ``y_0, y_1 .. y_{T-1}`` (numeric targets; y_0 the last observed value).
    lengths: (N,) int64 on the CPU, valid target steps (None: all T).
    forcing: probability that a training step reads the teacher's previous token rather than
        the model's own prediction (scheduled sampling; 1 = teacher forcing). Evaluation
        always forces.
    """

    inputs: Tensor
    lengths: Optional[Tensor] = None
    forcing: float = 1.0

    def select(self, idx: Tensor) -> "DecoderInputs":
        return DecoderInputs(self.inputs[idx.to(self.inputs.device)],
                             None if self.lengths is None else self.lengths[idx], self.forcing)


@dataclass
class Batch:
    """One minibatch.

    inputs:  (N, L, F) float, or (N, L) long token ids; padded after each sequence's length.
    targets: (N, O) for many-to-one; (N, L, O) float or (N, L) long for many-to-many;
        (N, S) long padded label sequences for CTC.
    continues: True when this batch continues the streams of the previous batch, so the
        final state of the previous batch is this one's initial state (stateful training
        on text); False when every sequence starts from the zero state.
    lengths: (N,) int64 on the CPU, valid steps of each sequence; None when all are L.
    target_lengths: (N,) int64 on the CPU, label-sequence lengths (CTC, encoder-decoder);
        None otherwise.
    decoder: the decoder's teacher-forced inputs (encoder-decoder tasks), else None; models
        are called ``model(inputs, state, lengths=batch.lengths, decoder=batch.decoder)``.
    """

    inputs: Tensor
    targets: Tensor
    continues: bool = False
    lengths: Optional[Tensor] = None
    target_lengths: Optional[Tensor] = None
    decoder: Optional[DecoderInputs] = None
    # (N, L) bool on the inputs' device, True at valid steps: derived once, at construction
    # (not lazily: a tensor first made inside a torch.func transform would escape it)
    mask: Tensor = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        N, L = self.inputs.shape[0], self.inputs.shape[1]
        if self.lengths is None:
            self.mask = torch.ones(N, L, dtype=torch.bool, device=self.inputs.device)
        else:
            self.mask = valid_mask(self.lengths, L, self.inputs.device)

    def __len__(self) -> int:
        return self.inputs.shape[0]

    @property
    def steps(self) -> int:
        """L, the padded length."""
        return self.inputs.shape[1]

    @cached_property
    def valid_steps(self) -> int:
        """Number of valid (sequence, step) pairs."""
        N, L = self.inputs.shape[0], self.inputs.shape[1]
        return N * L if self.lengths is None else int(self.lengths.sum())

    @cached_property
    def work_steps(self) -> int:
        """Sequence-steps a forward pass advances: the valid input steps, plus the decoder's
        steps of an encoder-decoder (the unit of :class:`rnntrain.algorithms.base.Work`)."""
        d = self.decoder
        if d is None:
            return self.valid_steps
        M, T = d.inputs.shape[0], d.inputs.shape[1]
        return self.valid_steps + (M * T if d.lengths is None else int(d.lengths.sum()))

    def select(self, idx: Tensor) -> "Batch":
        """The sequences ``idx`` (a CPU index tensor or bool mask) as a batch of their own."""
        idx = idx.nonzero()[:, 0] if idx.dtype == torch.bool else idx
        dev = self.inputs.device
        pick = lambda t, d: None if t is None else t[idx.to(d)]
        return Batch(pick(self.inputs, dev), pick(self.targets, self.targets.device), self.continues,
                     pick(self.lengths, "cpu"), pick(self.target_lengths, "cpu"),
                     None if self.decoder is None else self.decoder.select(idx))

    def piece(self, start: int, stop: int, per_step: bool) -> "Batch":
        """Steps [start, stop) of every sequence: inputs (N, stop - start, ...), lengths
        clamped to the piece (0 for a sequence that ended before it); per-step targets sliced,
        sequence targets kept whole."""
        lengths = None if self.lengths is None else (self.lengths - start).clamp(0, stop - start)
        targets = self.targets[:, start:stop] if per_step else self.targets
        return replace(self, inputs=self.inputs[:, start:stop], targets=targets, lengths=lengths)

    def ends_within(self, start: int, stop: int) -> Tensor:
        """(N,) bool (CPU): which sequences have their last step in [start, stop)."""
        n = torch.full((len(self),), self.steps) if self.lengths is None else self.lengths
        return (n > start) & (n <= stop)


class Task(ABC):
    """Data, loss and metrics of one learning problem. See the module docstring."""

    name: str = "task"
    spec: TaskSpec
    # the validation metric that picks the best round and early-stops, unless train.select
    # names another
    selection: str = "loss"
    # the metric a reader judges the task by (`rnntrain compare`'s column; baselines report it
    # as BASELINE_<headline>, e.g. persistence_mase)
    headline: str = "loss"
    # glob patterns of the files :meth:`report` writes into a run directory: the run
    # directory knows every file a run may hold from these (--overwrite replaces only them)
    FILES: Tuple[str, ...] = ()

    @abstractmethod
    def batches(self, split: str, batch_size: int, *,
                generator: Optional[torch.Generator] = None) -> Iterator[Batch]:
        """Minibatches of ``split`` ("train", "val", "test").

        Window tasks shuffle the train split with ``generator`` (and apply any training
        noise with it); stream tasks hand out consecutive chunks with ``continues`` set.
        """

    @abstractmethod
    def loss(self, outputs: Tensor, batch: Batch) -> Tensor:
        """Scalar mean loss of model outputs against ``batch.targets`` (the quantity trained
        on); per-step losses are the mean over valid steps only (``batch.mask``)."""

    def loss_weight(self, batch: Batch) -> float:
        """What :meth:`loss` divides by on ``batch``: valid steps for per-step losses, else
        sequences (a task with another mean, e.g. class-weighted, says so). The loss of rows
        split among processes is their losses weighted by their share of it (parallel.py)."""
        return float(batch.valid_steps if self.spec.per_step else len(batch))

    @abstractmethod
    def evaluate(self, model, split: str) -> Dict[str, float]:
        """Metrics of ``model`` on ``split``: always "loss", plus the task's own metrics.

        Runs without gradients, in eval mode; returns {} when the split is empty.
        """

    @abstractmethod
    def report(self, model, out_dir: Path) -> Dict[str, Any]:
        """Final artefacts of a run (plots, samples) written into ``out_dir``;
        returns JSON-able extras for the run summary."""

    def within_tolerance(self, outputs: Tensor, batch: Batch, tolerance: float) -> Tensor:
        """(N,) bool: which examples the outputs get right to within ``tolerance`` (largest
        absolute error over the example's outputs, valid steps only); population methods
        stop on the fraction of these (the GA recipe's "percentage of the training data
        learned"). Class targets (integer ids): every valid step's arg-max is the target."""
        targets = batch.targets
        per_step = outputs.dim() == 3 and outputs.shape[1] == batch.steps and targets.dim() >= 2 \
            and targets.shape[1] == batch.steps
        if not targets.is_floating_point():
            right = outputs.argmax(-1) == targets
            if per_step:
                right = right | ~batch.mask
            return right.reshape(targets.shape[0], -1).all(1)
        err = (outputs - targets).abs()
        if per_step:
            err = err * batch.mask.reshape(*batch.mask.shape, *([1] * (err.dim() - 2)))
        return err.reshape(outputs.shape[0], -1).amax(1) <= tolerance

    def population_scores(self, outputs: Tensor, batch: Batch, tolerance: float) -> Tuple[Tensor, Tensor]:
        """Losses (P,) and numbers of examples within ``tolerance`` (P,) of P networks'
        outputs (P, N, ...) on one batch (population methods). Here by vmap of :meth:`loss`
        and :meth:`within_tolerance`; a task whose loss batches over a leading axis overrides
        it (forecasts: the head's)."""
        return vmap(lambda o: (self.loss(o, batch), self.within_tolerance(o, batch, tolerance).sum()))(outputs)

    def start_round(self, round: int, model=None) -> None:
        """Called by the trainer before training round ``round`` (0-based; also after a
        resume) with the model as it starts the round, for schedules over training such as
        scheduled sampling's and for data the model itself makes (closed-loop windows)."""

    def split_size(self, split: str) -> int:
        """Number of examples (windows, or characters for text) in a split."""
        return 0

    def stream(self, split: str) -> Optional[Batch]:
        """``split`` as one continuous teacher-forced stream, or None if the task has none.

        Batch(inputs (1, T, F), targets (1, T, O)): ``targets[:, t]`` is what a model should
        output after reading ``inputs[:, :t + 1]`` from the zero state (for a window task:
        the target of the window ending at step t). For algorithms that read a whole split
        in one pass (echo state networks collect reservoir states over it).
        """
        return None

    def predict_file(self, model, path, **options) -> List[Dict[str, Any]]:
        """Prediction rows (one dict per row of the predictions CSV) for the sequences in a
        file read like the training data. Tasks of labelled sequences answer; others refuse."""
        from ..errors import UserError
        raise UserError(f"'predict' labels the sequences of a file; this is a {self.name} run "
                        "(use 'rnntrain forecast', 'sample' or 'generate' for it)")

    def state_dict(self) -> Dict[str, Any]:
        """What inference needs besides the weights (vocabulary, scaler, ...)."""
        return {}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        pass

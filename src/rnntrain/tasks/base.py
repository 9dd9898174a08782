"""The task protocol: a task owns its data, its loss and its metrics; models don't know tasks.

A task hands out data in the shape a training algorithm asks for (:meth:`Task.batches`),
computes the loss of a model's outputs, and evaluates any model the same way whatever
algorithm produced its weights (that is what makes side-by-side comparison honest).

The model calling convention every task relies on::

    outputs, state = model(inputs, state)      # state None = zeros

with ``inputs`` of shape (N, L, F) (float features) or (N, L) (token ids), and
``outputs`` (N, O) for many-to-one tasks or (N, L, O) for many-to-many tasks.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, Optional

import torch
from torch import Tensor

SPLITS = ("train", "val", "test")


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


@dataclass
class Batch:
    """One minibatch.

    inputs:  (N, L, F) float, or (N, L) long token ids.
    targets: (N, O) for many-to-one; (N, L, O) float or (N, L) long for many-to-many.
    continues: True when this batch continues the streams of the previous batch, so the
        final state of the previous batch is this one's initial state (stateful training
        on text); False when every sequence starts from the zero state.
    """

    inputs: Tensor
    targets: Tensor
    continues: bool = False

    def __len__(self) -> int:
        return self.inputs.shape[0]


class Task(ABC):
    """Data, loss and metrics of one learning problem. See the module docstring."""

    name: str = "task"
    spec: TaskSpec

    @abstractmethod
    def batches(self, split: str, batch_size: int, *,
                generator: Optional[torch.Generator] = None) -> Iterator[Batch]:
        """Minibatches of ``split`` ("train", "val", "test").

        Window tasks shuffle the train split with ``generator`` (and apply any training
        noise with it); stream tasks hand out consecutive chunks with ``continues`` set.
        """

    @abstractmethod
    def loss(self, outputs: Tensor, targets: Tensor) -> Tensor:
        """Scalar mean loss of model outputs against targets (the quantity trained on)."""

    @abstractmethod
    def evaluate(self, model, split: str) -> Dict[str, float]:
        """Metrics of ``model`` on ``split``: always "loss", plus the task's own metrics.

        Runs without gradients, in eval mode; returns {} when the split is empty.
        """

    @abstractmethod
    def report(self, model, out_dir: Path) -> Dict[str, Any]:
        """Final artefacts of a run (plots, samples) written into ``out_dir``;
        returns JSON-able extras for the run summary."""

    def within_tolerance(self, outputs: Tensor, targets: Tensor, tolerance: float) -> Tensor:
        """(N,) bool: which examples the outputs get right to within ``tolerance`` (largest
        absolute error over the example's outputs); population methods stop on the
        fraction of these (the GA recipe's "percentage of the training data learned").
        Class targets (integer ids): every step's arg-max is the target."""
        if not targets.is_floating_point():
            return (outputs.argmax(-1) == targets).reshape(targets.shape[0], -1).all(1)
        err = (outputs - targets).abs().reshape(outputs.shape[0], -1)
        return err.amax(1) <= tolerance

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

    def state_dict(self) -> Dict[str, Any]:
        """What inference needs besides the weights (vocabulary, scaler, ...)."""
        return {}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        pass

"""TensorBoard tracking, through ``torch.utils.tensorboard`` (the ``track`` extra: tensorboard).

Two monitors (``[monitor]`` table; training/monitors.py), writing event files into
``RUN_DIR/tensorboard`` (``tensorboard --logdir runs`` then shows every run side by side):

- ``tensorboard_every = N``: every N rounds, each number of the round's metrics row as a
  scalar (``train_loss`` -> tag ``train/loss``, ``val_bpc`` -> ``val/bpc``, ``seconds``),
  at step = the round; once, the run's config.toml as text;
- ``histograms_every = N``: every N rounds, a histogram of every parameter tensor
  (``weights/NAME``) and of its gradient where the algorithm left one (``gradients/NAME``;
  gradient families), read from the model after the round.

Resumed runs stay exact: the first write of a process passes ``purge_step`` = its first
round, so TensorBoard drops events a killed run wrote after its last checkpoint and the
resumed run writes again.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Dict, Optional

from ..errors import UserError

LOG_DIR = "tensorboard"


def require_tensorboard() -> None:
    """A one-line UserError unless the tensorboard package is installed."""
    try:
        import tensorboard  # noqa: F401  (only whether it is there)
    except ImportError:
        raise UserError("TensorBoard tracking needs the tensorboard package: pip install "
                        "'rnntrain[track]' (or pip install tensorboard), or drop monitor.tensorboard_every "
                        "/ monitor.histograms_every") from None


def summary_writer(out_dir: Path, purge_step: int):
    """torch's SummaryWriter on ``out_dir/tensorboard``."""
    require_tensorboard()
    from torch.utils.tensorboard import SummaryWriter  # imports tensorboard: only when tracking
    return SummaryWriter(log_dir=str(out_dir / LOG_DIR), purge_step=purge_step)


def scalar_tag(key: str) -> str:
    """A metrics column as a TensorBoard tag: its split prefix becomes a group."""
    split, _, name = key.partition("_")
    return f"{split}/{name}" if split in ("train", "val", "test") and name else key


class _Tracker(ABC):
    """A round callback that writes to the run's event files every ``every`` rounds: what
    to write is the subclass's ``write``; ``started`` runs once, with the writer's first use."""

    def __init__(self, model, task, every: int = 1, out_dir: Optional[Path] = None) -> None:
        self.model, self.every = model, every
        self.out_dir = None if out_dir is None else Path(out_dir)
        self.writer = None
        if self.out_dir is not None:
            require_tensorboard()  # when the run starts, not after its first round

    def __call__(self, round_: int, row: Dict[str, Any]) -> None:
        if self.out_dir is None or round_ % self.every:
            return
        if self.writer is None:
            self.writer = summary_writer(self.out_dir, purge_step=round_)
            self.started()
        self.write(round_, row)
        self.writer.flush()

    def started(self) -> None:
        """Anything written once per process (the config); nothing by default."""

    @abstractmethod
    def write(self, round_: int, row: Dict[str, Any]) -> None:
        """This round's events."""


class ScalarTracker(_Tracker):
    """``monitor.tensorboard_every``: the metrics row as scalars, the config as text."""

    def started(self) -> None:
        config = self.out_dir / "config.toml"
        if config.is_file():  # as a code block, which TensorBoard's text plugin keeps verbatim
            self.writer.add_text("config", "```\n" + config.read_text(encoding="utf-8") + "\n```", 0)

    def write(self, round_: int, row: Dict[str, Any]) -> None:
        for key, value in row.items():
            if key != "round" and isinstance(value, (int, float)) and not isinstance(value, bool):
                self.writer.add_scalar(scalar_tag(key), value, round_)


class HistogramTracker(_Tracker):
    """``monitor.histograms_every``: every parameter's weights and gradient as histograms."""

    def write(self, round_: int, row: Dict[str, Any]) -> None:
        for name, p in self.model.named_parameters():
            self.writer.add_histogram(f"weights/{name}", p.detach().float().cpu(), round_)
            if p.grad is not None:
                self.writer.add_histogram(f"gradients/{name}", p.grad.detach().float().cpu(), round_)

"""The training-algorithm protocol: every family of RNN training behind one small interface.

An algorithm advances training by one *round* in its own unit (an epoch of BPTT, a
stretch of a stream for online algorithms, a generation of a population method, one
closed-form fit) and reports metrics; the trainer, the CLI, run directories, checkpoints
and plots never branch on which algorithm runs. Adding an algorithm is adding a file
that subclasses :class:`Algorithm` and registers itself with :func:`register`.

What an algorithm receives (:class:`Context`): the model (an ``nn.Module`` with the
calling convention of :mod:`rnntrain.tasks.base`), the task (which hands out data in
the shape the algorithm asks for), the optimizer config (gradient algorithms build an
:class:`rnntrain.optim.Updater` from it; others ignore it), the number of rounds, the
batch size and a seeded ``torch.Generator`` for every random draw it makes.

Its whole state (optimizer moments, carried hidden state, influence matrices,
populations, ...) is :meth:`Algorithm.state_dict`, saved in every checkpoint, so
``--resume`` continues bit for bit for all algorithms alike.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Dict, Optional, Type

import torch
from torch import nn

from ..config.schema import closest
from ..errors import UserError
from ..optim import OptimConfig
from ..parallel import Distributed
from ..tasks.base import Task, TaskSpec

StepCallback = Callable[[float], None]  # called with the latest training loss, for progress display


@dataclass(frozen=True)
class NoOptions:
    """The [algorithm] table of an algorithm without settings of its own (only ``name``)."""


# The common unit of work: one *forward-step equivalent* is one sequence advanced one time step
# by the model's forward pass. Every family counts what it does in it, so a GA generation, a
# BPTT epoch and an RTRL stretch sit on one axis (`rnntrain compare`). Costs of the other
# passes, from automatic differentiation's cheap-gradient results (Griewank & Walther 2008,
# ch. 4: a reverse sweep costs a small multiple of the function, a forward tangent about one):
FORWARD = 1.0
TANGENT = 1.0   # each forward-mode tangent carried along a step (jvp)
COTANGENT = 2.0  # each reverse-mode cotangent pulled back through a step (vjp, backward)
TRAIN_STEP = FORWARD + COTANGENT  # forward + backward: the 3x of a gradient step


class Work:
    """Forward-step equivalents spent so far; algorithms :meth:`add` as they compute (the
    trainer reads the total after each round into the ``work`` column of metrics.csv). Under
    torchrun each process counts its own share (its rows, its individuals) and the trainer
    sums them: work is what every process together spent."""

    def __init__(self) -> None:
        self.total = 0.0

    def add(self, sequence_steps: float, cost: float = FORWARD) -> None:
        """``sequence_steps`` sequence-steps, each costing ``cost`` forward steps."""
        self.total += float(sequence_steps) * cost


@dataclass
class Context:
    model: nn.Module
    task: Task
    optim: OptimConfig
    rounds: int  # total rounds planned (schedules need it)
    batch_size: int
    generator: torch.Generator  # all randomness of the algorithm and its data order
    work: Work = field(default_factory=Work)  # shared by copies (a memetic phase's BPTT)
    dist: Distributed = field(default_factory=Distributed)  # the processes training this run


class Algorithm(ABC):
    """One training algorithm. Subclasses set ``name``, ``unit`` and ``Options``."""

    name: ClassVar[str]
    unit: ClassVar[str] = "epoch"  # what one round is, for progress and plots
    Options: ClassVar[type] = NoOptions  # frozen dataclass of its own settings ([algorithm] table)
    # learns forwards in time, one step after another (online algorithms): a task's
    # suggested bidirectional architecture is not applied (config/run.py)
    forward_only: ClassVar[bool] = False
    # trains through the model's training-time noise (the regularisers of core/regularize.py):
    # whole-sequence gradient training. The others would fit a function other than the one
    # they evaluate (populations, online steps) or than the one whose curvature they take (HF).
    regularized: ClassVar[bool] = False
    # settings that suit the family, used where the user set none (config/run.py), e.g. a
    # model size its cost allows: {"model": {"hidden": 32}}
    SUGGESTED: ClassVar[Dict[str, Dict[str, Any]]] = {}
    # what it shares among processes under torchrun (rnntrain/parallel.py): "data" (each takes
    # its rows of every batch), "population" (each evaluates its individuals), or None (it
    # refuses to start under torchrun)
    parallel: ClassVar[Optional[str]] = None

    @classmethod
    def why_not(cls, spec: TaskSpec, model: Any, options: Any) -> Optional[str]:
        """:meth:`refusal` after what every family checks alike (the regularisers)."""
        if getattr(model, "regularizers", None) and not cls.regularized:
            acts = "acts" if len(model.regularizers) == 1 else "act"
            return (f"{', '.join(model.regularizers)} {acts} while a network trains on whole sequences "
                    f"by backpropagation, which {cls.name} does not do: use --algorithm bptt, or "
                    f"drop {'it' if len(model.regularizers) == 1 else 'them'}")
        return cls.refusal(spec, model, options)

    @classmethod
    def refusal(cls, spec: TaskSpec, model: Any, options: Any) -> Optional[str]:
        """Why this family cannot train a ``model`` (its ModelConfig) on a task of ``spec``
        with ``options``: one line naming what would work, or None. The trainer asks before
        the model is built, so a refused pair writes nothing; the CLI never lists names."""
        return None

    def __init__(self, ctx: Context, options: Any) -> None:
        self.ctx = ctx
        self.options = options

    @abstractmethod
    def run_round(self, on_step: Optional[StepCallback] = None) -> Dict[str, float]:
        """Advance training by one round; return training metrics (at least "loss")."""

    def sequences_per_step(self) -> int:
        """How many sequences one time step of its batched work advances together (a batch;
        a population method: individuals per call x training examples). The trainer picks
        its threads from it."""
        return self.ctx.batch_size

    def stop_reason(self) -> Optional[str]:
        """A reason to stop before the planned rounds (e.g. a GA criterion met), or None."""
        return None

    def state_dict(self) -> Dict[str, Any]:
        return {}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        pass


ALGORITHMS: Dict[str, Type[Algorithm]] = {}


def register(cls: Type[Algorithm]) -> Type[Algorithm]:
    """Class decorator: make ``cls`` available as ``--algorithm cls.name``."""
    ALGORITHMS[cls.name] = cls
    return cls


def get_algorithm(name: str) -> Type[Algorithm]:
    if name not in ALGORITHMS:
        raise UserError(f"unknown algorithm '{name}'{closest(name, ALGORITHMS)}: choose one of "
                        f"{', '.join(sorted(ALGORITHMS))} (--algorithm)")
    return ALGORITHMS[name]

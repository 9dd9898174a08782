"""What a run is made of, from its config: the device, the task, the model (weights from the
run's seed) and the number of torch threads its work is worth."""
from __future__ import annotations

import torch

from ..config.run import RunConfig
from ..errors import UserError
from ..models import SequenceModel, build_model
from ..tasks import TASKS
from ..tasks.base import Task

DTYPES = {"float32": torch.float32, "float64": torch.float64}


def resolve_device(name: str) -> torch.device:
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"device '{name}' requested but CUDA is not available here: use --device cpu")
    return torch.device(name)


def make_task(config: RunConfig) -> Task:
    cfg_cls, task_cls = TASKS[config.task_kind]
    return task_cls(config.task, seed=config.seed, device=resolve_device(config.device),
                    dtype=DTYPES[config.dtype])


def make_model(config: RunConfig, task_spec) -> SequenceModel:
    """The model for ``config``; weights drawn from the run's seed (same seed, same weights)."""
    torch.manual_seed(config.seed)
    return build_model(config.model, task_spec, generator=torch.Generator().manual_seed(config.seed),
                       device=resolve_device(config.device), dtype=DTYPES[config.dtype])


# Below this many multiply-adds per time step (batch x gates x hidden x (hidden + input)),
# torch's intra-op threads cost more than they save: measured on the seed example
# (batch 32, hidden 64), one thread trains as fast as two on an idle 2-core machine and
# many times faster when anything else runs, as the threads then wait on each other.
SMALL_STEP_MACS = 2 ** 21


def auto_threads(model, sequences: int) -> int:
    """1 when a time step of ``sequences`` sequences (the algorithm's batched work: a batch,
    or a population's individuals x examples) is too small to split across threads, else 0
    (torch's default). ``threads = N`` in the config overrides this. A GA of 50 networks of
    16 units: 1 thread picked before (the model is small), 60 generations in 2.5 s; 2 now, 1.5 s."""
    cores = list(model.cores().values())
    if not cores or next(model.parameters()).device.type != "cpu":
        return 0
    macs = sum(sequences * rnn.cell.gates * rnn.hidden_size * (rnn.hidden_size + rnn.input_size)
               for rnn in cores)
    return 1 if macs < SMALL_STEP_MACS else 0

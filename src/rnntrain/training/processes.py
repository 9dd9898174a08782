"""Which process writes: under ``torchrun`` every process runs the same training (population
methods shard their evaluations across them), and only rank 0 writes the run directory."""
from __future__ import annotations

import os


def is_main_process() -> bool:
    """False in a ``torch.distributed`` process of rank other than 0, else True.

    Asked at write time, not once: the process group may be joined after the Trainer is
    built (the population evaluator joins it when torchrun launched the run). Before any
    group exists, torchrun's ``RANK``/``WORLD_SIZE`` variables answer, so processes that
    never join one (e.g. BPTT under torchrun) still do not race on the directory.
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank() == 0
    return int(os.environ.get("WORLD_SIZE", "1")) <= 1 or int(os.environ.get("RANK", "0")) == 0

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


_JOINED = False  # whether rnntrain itself created the process group (then it also ends it)


def join_process_group():
    """(rank, world size); joins the gloo process group when launched by torchrun and no
    group exists yet. Population evaluation calls this; a group the user made is used as is."""
    global _JOINED
    import torch.distributed as dist

    if not dist.is_available():
        return 0, 1
    if not dist.is_initialized() and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        dist.init_process_group("gloo")
        _JOINED = True
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def release_process_group() -> None:
    """End a run's process group cleanly: wait for every rank (rank 0 finishes later, as
    it alone writes the run directory), then destroy the group. A process that exits
    with a live gloo group can abort ("terminate called without an active exception")."""
    global _JOINED
    import torch.distributed as dist

    if _JOINED and dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
    _JOINED = False

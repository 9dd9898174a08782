"""Processes working on one run: the distributed context the trainer owns and hands to the
algorithms (``Context.dist``), and which process writes the run directory.

Under ``torchrun`` every process runs the same training: the same seed builds the same
model and the same global batches in every process. What each family does with several:

- gradient algorithms (BPTT, Hessian-free) are data-parallel: each process takes its rows of
  every global batch (:meth:`Distributed.shard`; for a stream, its own streams), and the
  gradients, each weighted by its rows' share of the batch's loss (``Task.loss_weight``), are
  summed over processes (:meth:`Distributed.sum_`), so every process takes the step a single
  process would take on the whole batch;
- population methods shard the individuals they evaluate;
- the others refuse to start under torchrun (one line).

Only rank 0 writes the run directory. The collectives are torch.distributed's (gloo on the
CPU, NCCL on CUDA), not torch's DistributedDataParallel wrapper: DDP averages gradients with
equal weights per process, which is wrong for shards of different sizes (ragged sequences,
class weights), and it hooks ``forward`` only, while algorithms call the model protocol's
other methods too. One flat all-reduce per step is what DDP's buckets do for models this size.
"""
from __future__ import annotations

import atexit
import os
from dataclasses import dataclass
from typing import Any, List

import torch
from torch import Tensor


def _environment_world() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    """False in a ``torch.distributed`` process of rank other than 0, else True. Before any
    group exists, torchrun's ``RANK``/``WORLD_SIZE`` variables answer."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank() == 0
    return _environment_world() <= 1 or int(os.environ.get("RANK", "0")) == 0


def _end_group() -> None:
    """At exit: end the process group rnntrain joined (a process that exits with a live gloo
    group can abort: "terminate called without an active exception")."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


@dataclass
class Distributed:
    """This process's place among those training one run: rank, world size, and the
    collectives the algorithms use. ``Distributed()`` is the one-process run."""

    rank: int = 0
    world: int = 1

    @classmethod
    def from_environment(cls, device: torch.device) -> "Distributed":
        """One process, or the group torchrun launched this one into: joined here (gloo on the
        CPU, NCCL on CUDA) unless the user's program already made one, and kept until the
        process exits, so that several runs in one process (a backtest's folds) share it.
        Ending and joining a group again between runs can hang (measured: one process
        re-joining while the other is already in the next run's first all-reduce)."""
        import torch.distributed as dist

        if not dist.is_available():
            return cls()
        if not dist.is_initialized() and _environment_world() > 1:
            if device.type == "cuda":
                torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
            atexit.register(_end_group)
        if dist.is_initialized():
            return cls(dist.get_rank(), dist.get_world_size())
        return cls()

    @property
    def active(self) -> bool:
        return self.world > 1

    def shard(self, n: int) -> Tensor:
        """This process's rows of a global batch of ``n``: contiguous, sizes differing by at
        most one (``torch.tensor_split``'s), (k,) int64 on the CPU."""
        return torch.tensor_split(torch.arange(n), self.world)[self.rank]

    def sum_(self, tensor: Tensor) -> Tensor:
        """``tensor`` summed over processes, in place (identity in one process)."""
        if self.active:
            import torch.distributed as dist
            dist.all_reduce(tensor)
        return tensor

    def gather(self, obj: Any) -> List[Any]:
        """Every process's ``obj`` (picklable), by rank."""
        if not self.active:
            return [obj]
        import torch.distributed as dist
        out: List[Any] = [None] * self.world
        dist.all_gather_object(out, obj)
        return out


def sum_gradients(dist: Distributed, params: List[torch.nn.Parameter], *extra: Tensor) -> List[Tensor]:
    """Sum ``params``' gradients over processes (a missing gradient counts as zeros), with
    ``extra`` scalars riding along in the same all-reduce; returns the summed extras."""
    if not dist.active:
        return list(extra)
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads] + [e.reshape(1).to(grads[0]) for e in extra])
    dist.sum_(flat)
    offset = 0
    for p, g in zip(params, grads):
        p.grad = flat[offset:offset + g.numel()].view_as(g).clone()
        offset += g.numel()
    return [flat[offset + i] for i in range(len(extra))]

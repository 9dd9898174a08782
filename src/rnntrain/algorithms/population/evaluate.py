r"""Batched population evaluation: the task loss of P weight vectors in one computation.

Every population method (GA, PSO, annealing, CMA-ES, guessing) asks the same question:
the training loss of P weight vectors. :class:`PopulationEvaluator` answers it with
``torch.func.functional_call`` of the model itself under ``torch.func.vmap`` over the
stacked weights, so the recurrent core runs its cells' own step (no restated
equations) with every matrix product batched over individuals::

    losses(pop (P, D)) -> (P,)        = task.loss(model_w(x), batch) for each row w of pop

with the whole training split presented to each network (the recipe's fitness). P is cut
into chunks so that a chunk's activations fit ``memory_mb``; under ``torch.distributed``
(``torchrun``) each process evaluates its contiguous share of the population and the
losses are all-gathered, so every process holds the same losses and, the population
being drawn from the same seeded generator everywhere, the same next population.
"""
from __future__ import annotations

import math
from typing import Dict, List, Optional, Tuple

import torch
from torch import Tensor, nn
from torch.func import functional_call, vmap

from ...models.vector import WeightLayout
from ...parallel import Distributed
from ...tasks.base import Batch, Task


class PopulationEvaluator:
    """Training loss and fraction of examples within ``tolerance`` for P weight vectors.

    Args:
        model: the model whose structure (not weights) defines every individual.
        task: gives the training split (``batches("train", ...)``) and the loss.
        tolerance: per-example criterion of :meth:`Task.within_tolerance`.
        memory_mb: activation budget of one chunk of individuals.
        dist: the processes of the run (rnntrain/parallel.py): each evaluates its share.
    """

    def __init__(self, model: nn.Module, task: Task, tolerance: float, memory_mb: int,
                 dist: Optional[Distributed] = None) -> None:
        self.model, self.task, self.tolerance = model, task, tolerance
        self.layout = WeightLayout(model)
        # The whole training split, in a fixed order (the loss is a mean: order is irrelevant).
        n = max(task.split_size("train"), 1)
        order = torch.Generator().manual_seed(0)
        self.batches: List[Batch] = list(task.batches("train", n, generator=order))
        self.examples = sum(len(b) for b in self.batches)
        self.work_steps = sum(b.work_steps for b in self.batches)  # one network over the split
        self.evaluated = 0  # networks this process evaluated in the last call (its share)
        self.chunk = self._chunk_size(memory_mb)
        self.fast = True  # population-first layout (False: plain vmap of functional_call)
        dist = dist or Distributed()
        self.rank, self.world = dist.rank, dist.world

    def _chunk_size(self, memory_mb: int) -> int:
        """Individuals per batched call: activations ~ N*L*(G+3)*H*layers*D floats each."""
        item = next(self.model.parameters()).element_size()
        per_step = sum((core.cell.gates + 3) * core.hidden_size * core.num_layers *
                       (2 if core.bidirectional else 1) + core.input_size
                       for core in self.model.cores().values())
        per = sum(b.inputs.shape[0] * b.inputs.shape[1] * per_step for b in self.batches) * item * 2
        return max(1, int(memory_mb * 2 ** 20 // max(per, 1)))

    def _fast(self, params: Dict[str, Tensor], batch: Batch):
        """The same function as :meth:`_plain`, with the model's own population
        forward (population-first layout, one batched matmul per step)."""
        out = self.model.population_forward(params, batch.inputs, batch.lengths,
                                            decoder=batch.decoder)  # (P, N, ...)
        return self._score(out, batch)

    def _score(self, out: Tensor, batch: Batch):
        """(P,) losses and within-tolerance counts of P networks' outputs (P, N, ...)."""
        return self.task.population_scores(out, batch, self.tolerance)

    def _plain(self, params: Dict[str, Tensor], batch: Batch):
        """Plain vmap of ``functional_call`` of the whole model (the reference of ``_fast``)."""
        out = vmap(lambda p: functional_call(self.model, p, (batch.inputs, None),
                                             {"lengths": batch.lengths, "final_state": False,
                                              "decoder": batch.decoder})[0])(params)
        return self._score(out, batch)

    def _local(self, pop: Tensor) -> Tuple[Tensor, Tensor]:
        """Losses and within-tolerance counts of the rows of ``pop`` (P, D) in this process."""
        self.evaluated = len(pop)
        losses, within = [], []
        batched = self._fast if self.fast else self._plain
        # no dropout: an individual's loss is a function of its weights. The model is left in
        # eval mode (gradient algorithms set train mode at each round, the trainer's
        # evaluation restores the mode it found): switching it back and forth walked every
        # module twice, 0.3 ms of a 10 ms GA generation
        if self.model.training:
            self.model.eval()
        with torch.no_grad():
            for i in range(0, len(pop), self.chunk):
                params = self.layout.unflatten(pop[i:i + self.chunk])
                loss = torch.zeros(min(self.chunk, len(pop) - i), dtype=torch.float64)
                count = torch.zeros_like(loss)
                for batch in self.batches:
                    l, w = batched(params, batch)  # (chunk,), (chunk,)
                    loss += l.double() * len(batch)
                    count += w.double()
                losses.append(loss / self.examples)
                within.append(count / self.examples)
        if not losses:
            return torch.zeros(0, dtype=torch.float64), torch.zeros(0, dtype=torch.float64)
        return torch.cat(losses), torch.cat(within)

    def __call__(self, pop: Tensor) -> Tuple[Tensor, Tensor]:
        """(P, D) -> (losses (P,) float64, NaN as +inf; fractions within tolerance (P,))."""
        if self.world == 1:
            losses, within = self._local(pop)
        else:
            losses, within = self._sharded(pop)
        return torch.nan_to_num(losses, nan=math.inf), within

    def _sharded(self, pop: Tensor) -> Tuple[Tensor, Tensor]:
        import torch.distributed as dist

        P = len(pop)
        share = -(-P // self.world)  # ceil: every process evaluates `share` rows (padded)
        mine = pop[self.rank * share:(self.rank + 1) * share]
        losses, within = self._local(mine)
        pad = share - len(losses)
        both = torch.cat([torch.stack([losses, within], 1),
                          torch.zeros(pad, 2, dtype=torch.float64)])  # (share, 2)
        gathered: List[Tensor] = [torch.empty_like(both) for _ in range(self.world)]
        dist.all_gather(gathered, both)
        allrows = torch.cat(gathered)[:P]
        return allrows[:, 0].contiguous(), allrows[:, 1].contiguous()

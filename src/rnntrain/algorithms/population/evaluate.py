r"""Batched population evaluation: the task loss of P weight vectors in one computation.

Every population method (GA, PSO, annealing, CMA-ES, guessing) asks the same question:
the training loss of P weight vectors. :class:`PopulationEvaluator` answers it with
``torch.func.functional_call`` of the model itself under ``torch.func.vmap`` over the
stacked weights, so the recurrent core runs its cells' own step (no restated
equations) with every matrix product batched over individuals::

    losses(pop (P, D)) -> (P,)        = task.loss(model_w(x), y) for each row w of pop

with the whole training split presented to each network (the recipe's fitness). P is cut
into chunks so that a chunk's activations fit ``memory_mb``; under ``torch.distributed``
(``torchrun``) each process evaluates its contiguous share of the population and the
losses are all-gathered, so every process holds the same losses and, the population
being drawn from the same seeded generator everywhere, the same next population.
"""
from __future__ import annotations

import math
import os
from typing import Dict, List, Tuple

import torch
from torch import Tensor, nn
from torch.func import functional_call, vmap

from ...models.vector import WeightLayout
from ...tasks.base import Task


def _distributed() -> Tuple[int, int]:
    """(rank, world size); joins the process group when launched by torchrun (gloo)."""
    import torch.distributed as dist

    if not dist.is_available():
        return 0, 1
    if not dist.is_initialized() and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        dist.init_process_group("gloo")
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class PopulationEvaluator:
    """Training loss and fraction of examples within ``tolerance`` for P weight vectors.

    Args:
        model: the model whose structure (not weights) defines every individual.
        task: gives the training split (``batches("train", ...)``) and the loss.
        tolerance: per-example criterion of :meth:`Task.within_tolerance`.
        memory_mb: activation budget of one chunk of individuals.
    """

    def __init__(self, model: nn.Module, task: Task, tolerance: float, memory_mb: int) -> None:
        self.model, self.task, self.tolerance = model, task, tolerance
        self.layout = WeightLayout(model)
        # The whole training split, in a fixed order (the loss is a mean: order is irrelevant).
        n = max(task.split_size("train"), 1)
        order = torch.Generator().manual_seed(0)
        self.batches = [(b.inputs, b.targets) for b in task.batches("train", n, generator=order)]
        self.examples = sum(len(x) for x, _ in self.batches)
        self.chunk = self._chunk_size(memory_mb)
        self.fast = True  # population-first layout (False: plain vmap of functional_call)
        self.rank, self.world = _distributed()

    def _chunk_size(self, memory_mb: int) -> int:
        """Individuals per vmapped call: activations ~ N*L*(G+2)*H*layers*D floats each."""
        rnn = self.model.rnn
        D = 2 if rnn.bidirectional else 1
        G = {"RNN": 1, "LSTM": 4, "GRU": 3}[rnn.mode]
        item = next(self.model.parameters()).element_size()
        per = sum(x.shape[0] * x.shape[1] * ((G + 3) * rnn.hidden_size * rnn.num_layers * D + rnn.input_size)
                  for x, _ in self.batches) * item * 2  # x2: temporaries of each step
        return max(1, int(memory_mb * 2 ** 20 // max(per, 1)))

    def _fast(self, params: Dict[str, Tensor], x: Tensor, y: Tensor):
        """The same function as :meth:`_one` under vmap, laid out population-first.

        encoder and readout run by ``functional_call`` under vmap; the core's time loop
        calls the cell's own ``recur`` under vmap on contiguous (P, N, H) states, which
        keeps every recurrent product one batched matmul. A many-to-one readout reads
        only the final state, so the sequence of states is never stacked."""
        model, P = self.model, next(iter(params.values())).shape[0]
        enc = {k[len("encoder."):]: v for k, v in params.items() if k.startswith("encoder.")}
        if enc:  # learned embeddings: features differ per individual
            seq = vmap(lambda p: functional_call(model.encoder, p, (x,)))(enc).transpose(1, 2)  # (P, L, N, F)
        else:
            seq = model.encoder(x).transpose(0, 1)  # (L, N, F), shared by all individuals
        rnn, cell = model.rnn, model.rnn.cell
        recur = vmap(cell.recur)
        L, N = seq.shape[-3], seq.shape[-2]
        for layer in range(rnn.num_layers):
            w = [params.get(f"rnn.{n}_l{layer}") for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
            GH, F_in = w[0].shape[1], w[0].shape[2]
            if seq.dim() == 3:  # shared inputs: one product per step for all individuals
                w_cat = w[0].reshape(P * GH, F_in)  # (P*G*H, F)
                b_cat = None if w[2] is None else w[2].reshape(P * GH)
                steps = (torch.nn.functional.linear(x_t, w_cat, b_cat).view(N, P, GH).transpose(0, 1)
                         for x_t in seq.unbind(0))  # each (P, N, G*H), computed step by step below
            else:  # (P, L*N, F) @ (P, F, G*H)
                gx = torch.bmm(seq.reshape(P, L * N, F_in), w[0].transpose(1, 2))
                if w[2] is not None:
                    gx = gx + w[2][:, None]
                steps = gx.view(P, L, N, GH).unbind(1)  # each (P, N, G*H)
            state = tuple(torch.zeros(P, N, rnn.hidden_size, dtype=w[1].dtype) for _ in range(rnn.state_arity))
            outs = []
            last = layer == rnn.num_layers - 1 and not model.per_step
            for g in steps:  # (P, N, G*H)
                state = recur(g, state, w[1], w[3])
                if not last:
                    outs.append(state[0])
            seq = state[0][:, None] if last else torch.stack(outs, 1)  # (P, L or 1, N, H)
        states = seq.transpose(1, 2)  # (P, N, L or 1, H): the readout reads the last step
        ro = {k[len("readout."):]: v for k, v in params.items() if k.startswith("readout.")}
        out = vmap(lambda p, s: functional_call(model.readout, p, (s,)))(ro, states)
        loss = vmap(self.task.loss, in_dims=(0, None))(out, y)
        tol = self.tolerance
        within = vmap(lambda o: self.task.within_tolerance(o, y, tol).sum())(out)
        return loss, within

    def _one(self, params, x: Tensor, y: Tensor):
        out, _ = functional_call(self.model, params, (x, None))  # (N, O) or (N, L, O)
        loss = self.task.loss(out, y)
        within = self.task.within_tolerance(out, y, self.tolerance).sum()
        return loss, within

    def _local(self, pop: Tensor) -> Tuple[Tensor, Tensor]:
        """Losses and within-tolerance counts of the rows of ``pop`` (P, D) in this process."""
        losses, within = [], []
        rnn = getattr(self.model, "rnn", None)
        fast = self.fast and rnn is not None and not rnn.bidirectional
        batched = self._fast if fast else vmap(self._one, in_dims=(0, None, None))
        was_training = self.model.training
        self.model.eval()  # no dropout: an individual's loss is a function of its weights
        try:
            with torch.no_grad():
                for i in range(0, len(pop), self.chunk):
                    params = self.layout.unflatten(pop[i:i + self.chunk])
                    loss = torch.zeros(min(self.chunk, len(pop) - i), dtype=torch.float64)
                    count = torch.zeros_like(loss)
                    for x, y in self.batches:
                        l, w = batched(params, x, y)  # (chunk,), (chunk,)
                        loss += l.double() * len(x)
                        count += w.double()
                    losses.append(loss / self.examples)
                    within.append(count / self.examples)
        finally:
            self.model.train(was_training)
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

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
from typing import Dict, List, Optional, Tuple

import torch
from torch import Tensor, nn
from torch.func import functional_call, vmap

from ...models.vector import WeightLayout
from ...tasks.base import Task


def _distributed() -> Tuple[int, int]:
    """(rank, world size); joins the process group when launched by torchrun (gloo)."""
    from ...training.processes import join_process_group
    return join_process_group()


# Bytes of one per-step tensor (p, N, G*H) of a block of individuals: the step's working set
# (gx, state, the product, the new state) then stays within a core's L2 cache.
_CACHE_BYTES = 2 ** 19


def _input_part(x_t: Tensor, w_in: Tensor, b_in: Optional[Tensor], out: Optional[Tensor]) -> Tensor:
    """gx_t = x_t W_ih^T + b_ih for p networks: x_t (N, F) shared or (p, N, F), w_in (p, F, G*H),
    b_in (p, 1, G*H) -> (p, N, G*H), one kernel, written into ``out`` when given."""
    p, F = w_in.shape[0], w_in.shape[1]
    if F == 1 and x_t.dim() == 2 and b_in is not None:  # an outer product: elementwise
        return torch.addcmul(b_in, x_t, w_in, out=out)
    if x_t.dim() == 2:
        x_t = x_t.expand(p, *x_t.shape)
    return torch.bmm(x_t, w_in, out=out) if b_in is None else torch.baddbmm(b_in, x_t, w_in, out=out)


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
        G = rnn.cell.gates
        item = next(self.model.parameters()).element_size()
        per = sum(x.shape[0] * x.shape[1] * ((G + 3) * rnn.hidden_size * rnn.num_layers * D + rnn.input_size)
                  for x, _ in self.batches) * item * 2  # x2: temporaries of each step
        return max(1, int(memory_mb * 2 ** 20 // max(per, 1)))

    def _fast(self, params: Dict[str, Tensor], x: Tensor, y: Tensor):
        """The same function as :meth:`_one` under vmap, laid out population-first.

        Encoder, readout and loss run under vmap, once per chunk. The time loop calls the
        cell's own ``recur`` directly, with stacked weights (p, G*H, H) on contiguous
        (p, N, H) states, where every recurrent product is one batched matmul
        (``core.cells._linear``): no vmap dispatch per step. It runs over blocks of p
        individuals whose per-step tensors (p, N, G*H) stay in a core's cache; a
        many-to-one readout reads only the final state (the sequence is never stacked)."""
        model, rnn = self.model, self.model.rnn
        P = next(iter(params.values())).shape[0]
        enc = {k[len("encoder."):]: v for k, v in params.items() if k.startswith("encoder.")}
        if enc:  # learned embeddings: features differ per individual
            feats = vmap(lambda p: functional_call(model.encoder, p, (x,)))(enc)  # (P, N, L, F)
            seq = feats.permute(2, 0, 1, 3).contiguous()  # (L, P, N, F)
        else:
            seq = model.encoder(x).transpose(0, 1).contiguous()  # (L, N, F), shared by all
        N, item = x.shape[0], seq.element_size()
        block = max(1, _CACHE_BYTES // (N * rnn.cell.gates * rnn.hidden_size * item))
        states = [self._unroll(params, seq if not enc else seq[:, i:i + block], i, min(block, P - i))
                  for i in range(0, P, block)]
        states = torch.cat(states)  # (P, N, L or 1, H): the readout reads the last step
        ro = {k[len("readout."):]: v for k, v in params.items() if k.startswith("readout.")}
        out = vmap(lambda p, s: functional_call(model.readout, p, (s,)))(ro, states)
        loss = vmap(self.task.loss, in_dims=(0, None))(out, y)
        tol = self.tolerance
        within = vmap(lambda o: self.task.within_tolerance(o, y, tol).sum())(out)
        return loss, within

    def _unroll(self, params: Dict[str, Tensor], seq: Tensor, i: int, p: int) -> Tensor:
        """Individuals i..i+p through every layer; seq (L, N, F) shared or (L, p, N, F).
        Returns (p, N, L, H), or (p, N, 1, H) (final state) for a many-to-one readout."""
        rnn = self.model.rnn
        cell, final_only = rnn.cell, not self.model.per_step
        steps = list(seq.unbind(0))  # L x (N, F) or (p, N, F)
        for layer in range(rnn.num_layers):
            w_ih, w_hh, b_ih, b_hh = (None if w is None else w[i:i + p] for w in (
                params.get(f"rnn.{n}_l{layer}") for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")))
            w_in = w_ih.transpose(1, 2).contiguous()  # (p, F, G*H)
            w_hh = w_hh.contiguous()  # (p, G*H, H)
            b_in = None if b_ih is None else b_ih[:, None].contiguous()  # (p, 1, G*H)
            b_hh = None if b_hh is None else b_hh[:, None].contiguous()
            if cell.bias_in_gx and b_hh is not None:  # b_hh only meets gx + b_hh: add it once
                b_in, b_hh = (b_hh if b_in is None else b_in + b_hh), None
            state = tuple(torch.zeros(p, steps[0].shape[-2], rnn.hidden_size, dtype=w_hh.dtype)
                          for _ in range(rnn.state_arity))  # (p, N, H) each
            outs, last = [], final_only and layer == rnn.num_layers - 1
            gx = None  # gx_t's storage, reused: recur reads gx and never keeps it
            for x_t in steps:
                gx = _input_part(x_t, w_in, b_in, gx)  # (p, N, G*H)
                state = cell.recur(gx, state, w_hh, b_hh)
                if not last:
                    outs.append(state[0])
            steps = [state[0]] if last else outs
        return torch.stack(steps, 2)  # (p, N, L or 1, H)

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

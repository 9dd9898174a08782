r"""Gauss-Newton products of a model's loss, as Hessian-free optimisation (``hf.py``) takes them.

:class:`Curvature` is one batch's product :math:`(J^\top H_L J + \gamma J_h^\top J_h /
(N L)) v`; :class:`Curvatures` weights a minibatch's chunks by their share of its sequences
and sums the processes' rows under ``torchrun``. Shapes: ``v`` and every product are flat
parameter vectors (order of ``model.parameters()``, those that require grad).
"""
from __future__ import annotations

from typing import Callable, List, Optional, Tuple

import torch
from torch import Tensor, nn
from torch.func import functional_call

from ..core.unroll import stepping
from ..parallel import Distributed
from ..tasks.base import Batch


class Unrolled(nn.Module):
    """The model as outputs *and* every hidden state (the protocol's ``outputs_and_states``),
    as a module's forward so that ``functional_call`` runs it over explicit parameters."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor, lengths: Optional[Tensor] = None, decoder=None):
        return self.model.outputs_and_states(x, lengths, decoder)


class Curvature:
    """Gauss-Newton(-vector) products of ``loss(model(x), y)`` at the model's current weights.

    ``product(v)`` = :math:`(J^\\top H_L J + \\gamma J_h^\\top J_h / (N L)) v` for a flat
    parameter-vector ``v`` (order of ``model.parameters()``), with ``gamma = structural``.

    The network runs forwards once, here, and backwards once with its graph kept: :math:`g(u)
    = J^\\top u` for a tracked cotangent :math:`u` (zeros), linear in :math:`u`. A product is
    then three passes of autograd's engine over kept graphs, no Python per step: :math:`J v =
    \\partial (v^\\top g) / \\partial u` (the backward pass differentiated), :math:`H_L J v`
    through the loss's kept gradient, and :math:`J^\\top (H_L J v)`. ``torch.func.jvp``,
    which re-ran the model's Python forward for every product, took 1.4-2.3x as long (4-128
    units, T = 20-100; docs/benchmarks.md). Dropout draws once: every product sees one network.
    """

    def __init__(self, model: nn.Module, loss: Callable[[Tensor, Batch], Tensor], batch: Batch,
                 *, structural: float = 0.0, steps: Optional[int] = None, loss_scale: float = 1.0) -> None:
        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        names, shapes, sizes = ["model." + n for n, _ in named], [p.shape for _, p in named], [p.numel() for _, p in named]
        self.theta = torch.cat([p.detach().reshape(-1) for _, p in named])
        self.structural = structural
        theta = self.theta.clone().requires_grad_()
        params = {n: t.view(s) for n, t, s in zip(names, theta.split(sizes), shapes)}
        with torch.enable_grad(), stepping():  # a backward pass autograd can differentiate
            out, states = functional_call(Unrolled(model), params, (batch.inputs, batch.lengths, batch.decoder))
            # the outputs and states the weights move (an echo state network's states they do
            # not: J_h = 0), each with a tracked cotangent u
            self._outputs = [t for t in (out, states) if t.requires_grad]
            self._u = [torch.zeros_like(t, requires_grad=True) for t in self._outputs]
            self._g = _grad(self._outputs, theta, self._u, create_graph=True)  # J^T u
            self._z = out.detach().requires_grad_()
            self._dl = _grad(loss(self._z, batch), self._z, None, create_graph=True)  # dL/dz
        self._theta = theta
        # N * L without padding (padded states are constant zeros); a process's rows of a batch
        # divide by the whole batch's (``steps``)
        self.steps = steps or batch.valid_steps
        self.loss_scale = loss_scale  # a process's rows: their share of the batch's loss (not of the structural term)

    def product(self, v: Tensor, *, structural: bool = True) -> Tensor:
        """The product with ``v``; ``structural=False`` leaves out the structural term."""
        jv, *jh = _grad(self._g, self._u, v)  # J v (outputs), J_h v (hidden states, if they move)
        hjv = _grad(self._dl, self._z, jv)  # H_L J v, on the outputs only
        hjv = hjv * self.loss_scale if self.loss_scale != 1.0 else hjv
        gamma = self.structural if structural else 0.0
        cot_h = [t * (gamma / self.steps) if gamma else torch.zeros_like(t) for t in jh]
        return _grad(self._outputs, self._theta, [hjv, *cot_h])  # J^T H_L J v + gamma J_h^T J_h v / (N L)


def _grad(outputs, inputs, cotangents, create_graph: bool = False):
    """``torch.autograd.grad`` over kept graphs (a part no output depends on: zeros); one
    input -> its gradient, a list -> a tuple."""
    got = torch.autograd.grad(outputs, inputs, cotangents, retain_graph=True, create_graph=create_graph,
                              allow_unused=True, materialize_grads=True)
    return got if isinstance(inputs, list) else got[0]


def gauss_newton_product(model: nn.Module, loss, batch: Batch, v: Tensor, *,
                         structural: float = 0.0) -> Tensor:
    """:math:`(J^\\top H_L J + \\gamma J_h^\\top J_h/(NL))\\, v` on ``batch``; see :class:`Curvature`."""
    return Curvature(model, loss, batch, structural=structural).product(v)


def flat(tensors) -> Tensor:
    """Tensors of any shapes -> one flat vector, in order."""
    return torch.cat([t.reshape(-1) for t in tensors])


Chunks = List[Batch]


def _weights(chunks: Chunks) -> List[float]:
    """n_i / N: each chunk's share of the minibatch's sequences."""
    sizes = [len(b) for b in chunks]
    return [n / sum(sizes) for n in sizes]


# A chunk as this process computes it: (its rows of the chunk, the chunk's weight n_i / N,
# these rows' share of the chunk's loss (Task.loss_weight; 1 in one process), the chunk's
# valid steps). Every quantity is the sum of the processes' weighted parts (rnntrain/parallel.py).
Part = Tuple[Batch, float, float, int]


def chunk_parts(chunks: Chunks, dist: Distributed, task) -> List[Part]:
    """Each chunk as this process computes it (:data:`Part`); a process with no rows of a
    chunk leaves it out."""
    out = []
    for b, w in zip(chunks, _weights(chunks)):
        if not dist.active:
            out.append((b, w, 1.0, b.valid_steps))
            continue
        mine = b.select(dist.shard(len(b)))
        if len(mine):
            out.append((mine, w, task.loss_weight(mine) / task.loss_weight(b), b.valid_steps))
    return out


class Curvatures:
    """The Gauss-Newton products of a minibatch of chunks: the chunks' :class:`Curvature`
    products weighted by their share of the sequences (so the mean over all sequences),
    summed over processes (each takes its rows; the structural term is over the whole chunk's
    steps and not scaled by a row's share of the loss)."""

    def __init__(self, model: nn.Module, loss, chunks: Chunks, *, structural: float,
                 dist: Optional[Distributed] = None, task=None) -> None:
        dist = dist or Distributed()  # (one process: ``task`` is not asked for weights)
        parts = chunk_parts(chunks, dist, task)
        self.parts = [Curvature(model, loss, b, structural=structural, steps=steps, loss_scale=share)
                      for b, _, share, steps in parts]
        self.weights = [w for _, w, _, _ in parts]
        self.steps = sum(b.work_steps for b, *_ in parts)  # this process's sequence-steps (Work)
        self.dist = dist
        self.theta = torch.cat([p.detach().reshape(-1) for p in model.parameters() if p.requires_grad])

    def product(self, v: Tensor, *, structural: bool = True) -> Tensor:
        out = torch.zeros_like(v)
        for part, w in zip(self.parts, self.weights):
            out += w * part.product(v, structural=structural)
        return self.dist.sum_(out)

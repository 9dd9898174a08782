r"""The third view of a model: its weights as one flat vector (one gene = one weight).

Layout: the parameters in registration order (``model.named_parameters()``, the order
of ``torch.nn.utils.parameters_to_vector``), each flattened row-major. For a
``SequenceModel`` with an Elman/LSTM/GRU core of G gates, hidden size H, that is::

    [encoder weights (token embeddings only)]
    rnn.weight_ih_l0 (G*H, H_in), rnn.weight_hh_l0 (G*H, H), rnn.bias_ih_l0 (G*H,),
    rnn.bias_hh_l0 (G*H,), then the same for _l0_reverse, _l1, ... (torch's order)
    readout.head weights and biases (each Linear: weight (O, I) then bias (O,))

so gene ``offset + i*cols + j`` is weight ``[i, j]`` of the parameter at ``offset``.
:meth:`WeightLayout.describe` prints the table for a given model.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Tuple

import torch
from torch import Tensor, nn


@dataclass(frozen=True)
class Slot:
    name: str  # parameter name, as in model.state_dict()
    shape: Tuple[int, ...]
    offset: int  # first gene
    numel: int


class WeightLayout:
    """Where each parameter of ``model`` lives in the flat weight vector (see module doc)."""

    def __init__(self, model: nn.Module) -> None:
        self.slots: List[Slot] = []
        offset = 0
        for name, p in model.named_parameters():
            self.slots.append(Slot(name, tuple(p.shape), offset, p.numel()))
            offset += p.numel()
        self.size = offset  # D, genes per individual

    def vector(self, model: nn.Module) -> Tensor:
        """The model's weights as a (D,) vector (a copy)."""
        return torch.cat([p.detach().reshape(-1) for p in model.parameters()])

    def load(self, model: nn.Module, vector: Tensor) -> None:
        """Write a (D,) vector into the model's parameters, in place."""
        if vector.shape != (self.size,):
            raise ValueError(f"expected a weight vector of shape ({self.size},), got {tuple(vector.shape)}")
        with torch.no_grad():
            for slot, p in zip(self.slots, model.parameters()):
                p.copy_(vector[slot.offset:slot.offset + slot.numel].view(slot.shape))

    def unflatten(self, vectors: Tensor) -> Dict[str, Tensor]:
        """(P, D) vectors -> {name: (P, *shape)} views, for functional_call under vmap."""
        P = vectors.shape[0]
        return {s.name: vectors[:, s.offset:s.offset + s.numel].reshape(P, *s.shape) for s in self.slots}

    def describe(self) -> str:
        """One line per parameter: genes [start, end), name, shape."""
        return "\n".join(f"genes {s.offset:>7}-{s.offset + s.numel - 1:<7} {s.name} {list(s.shape)}"
                         for s in self.slots)

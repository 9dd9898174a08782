"""Readouts: from the recurrent states to predictions. Pluggable by name (``READOUTS``).

A readout takes the core's output sequence ``states`` (N, L, D*H) and the valid
``lengths`` (N,) of the sequences (None: all L), and returns predictions: (N, O) for
many-to-one, (N, L, O) for many-to-many. Each is an optional MLP (``hidden`` sizes, ReLU between) then a linear map.
``attention`` pools the states with learned attention weights (models/attention.py).
"""
from __future__ import annotations

from typing import Dict, Optional, Sequence, Type

import torch
from torch import Tensor, nn
from torch.func import functional_call, vmap

from ..core.lengths import valid_mask
from .attention import Attention


def last_valid(states: Tensor, lengths: Optional[Tensor]) -> Tensor:
    """states (N, L, D) read at each sequence's last valid step, ``lengths - 1`` (L - 1
    without lengths) -> (N, D); one gather, so it works under vmap too (a sequence of
    length 0 reads step 0)."""
    if lengths is None:
        return states[:, -1]
    idx = (lengths - 1).clamp(min=0).to(states.device)  # (N,)
    return states[torch.arange(states.shape[0], device=states.device), idx]


def mlp(in_features: int, hidden: Sequence[int], out_features: int) -> nn.Module:
    """Linear layers in_features -> *hidden -> out_features with ReLU between (the seed
    Keras model's Dense(8, relu) + Dense(1) is ``hidden=(8,)``)."""
    layers = []
    for h in hidden:
        layers += [nn.Linear(in_features, h), nn.ReLU()]
        in_features = h
    layers.append(nn.Linear(in_features, out_features))
    return layers[0] if len(layers) == 1 else nn.Sequential(*layers)


def population_head(head: nn.Module, params: Dict[str, Tensor], x: Tensor) -> Optional[Tensor]:
    """An :func:`mlp` head of P networks at once, as batched matrix products: ``params``
    {name in ``head``: (P, *shape)}, x (P, ..., I) -> (P, ..., O); None for any other head.
    vmap of the module does the same, at a per-call cost that was a tenth of a population
    method's generation (GA, P = 50, 16 units)."""
    layers = list(head) if isinstance(head, nn.Sequential) else [head]
    if not all(isinstance(m, (nn.Linear, nn.ReLU)) for m in layers):
        return None
    shape = x.shape
    # features first, y^T (P, O, M) = W x^T + b: the product has M (hundreds of windows) as
    # its long side; rows first, (P, M, I) (P, I, O) with O = 1 ran 3x slower (a product
    # with one column)
    x = x.reshape(shape[0], -1, shape[-1]).transpose(1, 2)  # (P, I, M)
    for i, layer in enumerate(layers):
        prefix = f"{i}." if isinstance(head, nn.Sequential) else ""
        if isinstance(layer, nn.ReLU):
            x = torch.relu(x)
            continue
        w, b = params[prefix + "weight"], params.get(prefix + "bias")  # (P, O, I), (P, O)
        x = torch.bmm(w, x) if b is None else torch.baddbmm(b[:, :, None], w, x)
    return x.transpose(1, 2).reshape(*shape[:-1], x.shape[1])


class Readout(nn.Module):
    per_step: bool = False  # a prediction at every step (many-to-many)
    # reads the states of every step, not only each sequence's final state (then truncated
    # BPTT and online credit, which see the final state of a piece, cannot train it)
    reads_all_steps: bool = False

    def __init__(self, hidden_size: int, directions: int, out_features: int,
                 hidden: Sequence[int] = (), *, attention: str = "none") -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.directions = directions
        self.head = mlp(hidden_size * directions, hidden, out_features)

    def population(self, params: Dict[str, Tensor], states: Tensor, lengths: Optional[Tensor] = None) -> Tensor:
        """P readouts at once (population methods): ``params`` {name: (P, *shape)} (as
        ``named_parameters()``), states (P, N, L, D*H) -> (P, N, O) or (P, N, L, O). Here by
        vmap of the module; readouts with a cheaper batched form override it."""
        return vmap(lambda p, s: functional_call(self, p, (s, lengths)))(params, states)

    def _head_params(self, params: Dict[str, Tensor]) -> Dict[str, Tensor]:
        return {k[len("head."):]: v for k, v in params.items() if k.startswith("head.")}


class LastStep(Readout):
    """Many-to-one: predict from the final state of each direction.

    The forward direction's final state is at each sequence's last *valid* step,
    ``lengths - 1`` (L - 1 without lengths); the backward direction's is at step 0 (it has
    read the whole sequence there). states (N, L, D*H), lengths (N,) -> (N, O).
    """

    def forward(self, states: Tensor, lengths: Optional[Tensor] = None) -> Tensor:
        H = self.hidden_size
        last = last_valid(states[..., :H], lengths)  # (N, H)
        if self.directions == 2:
            last = torch.cat([last, states[:, 0, H:]], dim=-1)  # (N, 2H)
        return self.head(last)

    def population(self, params: Dict[str, Tensor], states: Tensor, lengths: Optional[Tensor] = None) -> Tensor:
        """states (P, N, L, D*H), or (P, N, 1, H) final states of one direction."""
        N, H = states.shape[1], self.hidden_size
        last = states[:, :, -1, :H] if lengths is None else \
            states[:, torch.arange(N, device=states.device), (lengths - 1).clamp(min=0).to(states.device), :H]
        if self.directions == 2:  # the backward direction has read the whole sequence at step 0
            last = torch.cat([last, states[:, :, 0, H:]], -1)  # (P, N, 2H)
        out = population_head(self.head, self._head_params(params), last)  # (P, N, O)
        return super().population(params, states, lengths) if out is None else out


class MeanPool(Readout):
    """Many-to-one from the mean of the states over each sequence's valid steps (every
    direction), then the head: states (N, L, D*H), lengths (N,) -> (N, O). Pooling is a strong
    readout for classifying whole sequences (no single step has to carry the summary)."""

    reads_all_steps = True

    def forward(self, states: Tensor, lengths: Optional[Tensor] = None) -> Tensor:
        if lengths is None:
            return self.head(states.mean(1))
        L = states.shape[1]
        valid = valid_mask(lengths, L, states.device)  # (N, L)
        total = (states * valid[..., None].to(states.dtype)).sum(1)  # (N, D*H)
        return self.head(total / lengths.clamp(min=1)[:, None].to(states))


class AttentionPool(Readout):
    r"""Many-to-one from an attention-weighted mean of the states: a learned query q scores
    every valid step (``model.attention``'s score function; none means additive),
    :math:`a = \mathrm{softmax}(\mathrm{score}(q, m_s))` over the valid steps only (exactly
    0 on padding), then the head reads :math:`\sum_s a_s m_s`. states (N, L, D*H),
    lengths (N,) -> (N, O); :meth:`attend` also gives the weights (N, L)."""

    reads_all_steps = True

    def __init__(self, hidden_size: int, directions: int, out_features: int,
                 hidden: Sequence[int] = (), *, attention: str = "none") -> None:
        super().__init__(hidden_size, directions, out_features, hidden)
        size = hidden_size * directions
        self.score = Attention("additive" if attention == "none" else attention, size, size)
        self.query = nn.Parameter(torch.randn(size) / size ** 0.5)

    def attend(self, states: Tensor, lengths: Optional[Tensor] = None):
        """(context (N, D*H), weights (N, L))."""
        mask = None if lengths is None else valid_mask(lengths, states.shape[1], states.device)
        return self.score(self.query.expand(states.shape[0], -1), states, mask)

    def forward(self, states: Tensor, lengths: Optional[Tensor] = None) -> Tensor:
        return self.head(self.attend(states, lengths)[0])


class EveryStep(Readout):
    """Many-to-many: a prediction at every step. states (N, L, D*H) -> (N, L, O) (the
    steps after a sequence's end are computed too; losses and metrics mask them)."""

    per_step = True
    reads_all_steps = True

    def forward(self, states: Tensor, lengths: Optional[Tensor] = None) -> Tensor:
        return self.head(states)

    def population(self, params: Dict[str, Tensor], states: Tensor, lengths: Optional[Tensor] = None) -> Tensor:
        out = population_head(self.head, self._head_params(params), states)  # (P, N, L, O)
        return super().population(params, states, lengths) if out is None else out


READOUTS: Dict[str, Type[Readout]] = {"last": LastStep, "mean": MeanPool, "attention": AttentionPool,
                                      "every": EveryStep}

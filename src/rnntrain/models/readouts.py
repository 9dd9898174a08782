"""Readouts: from the recurrent states to predictions. Pluggable by name (``READOUTS``).

A readout takes the core's output sequence ``states`` (N, L, D*H) and the hidden size
per direction, and returns predictions: (N, O) for many-to-one, (N, L, O) for
many-to-many. Each is an optional MLP (``hidden`` sizes, ReLU between) then a linear map.
Later readouts (attention over the states, CTC labelling) register here too.
"""
from __future__ import annotations

from typing import Dict, Sequence, Type

import torch
from torch import Tensor, nn


def mlp(in_features: int, hidden: Sequence[int], out_features: int) -> nn.Module:
    """Linear layers in_features -> *hidden -> out_features with ReLU between (the seed
    Keras model's Dense(8, relu) + Dense(1) is ``hidden=(8,)``)."""
    layers = []
    for h in hidden:
        layers += [nn.Linear(in_features, h), nn.ReLU()]
        in_features = h
    layers.append(nn.Linear(in_features, out_features))
    return layers[0] if len(layers) == 1 else nn.Sequential(*layers)


class Readout(nn.Module):
    per_step: bool = False

    def __init__(self, hidden_size: int, directions: int, out_features: int,
                 hidden: Sequence[int] = ()) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.directions = directions
        self.head = mlp(hidden_size * directions, hidden, out_features)


class LastStep(Readout):
    """Many-to-one: predict from the final state of each direction.

    The forward direction's final state is at step L-1; the backward direction's is at
    step 0 (it has read the whole sequence there). states (N, L, D*H) -> (N, O).
    """

    def forward(self, states: Tensor) -> Tensor:
        H = self.hidden_size
        last = states[:, -1, :H]  # (N, H)
        if self.directions == 2:
            last = torch.cat([last, states[:, 0, H:]], dim=-1)  # (N, 2H)
        return self.head(last)


class EveryStep(Readout):
    """Many-to-many: a prediction at every step. states (N, L, D*H) -> (N, L, O)."""

    per_step = True

    def forward(self, states: Tensor) -> Tensor:
        return self.head(states)


READOUTS: Dict[str, Type[Readout]] = {"last": LastStep, "every": EveryStep}

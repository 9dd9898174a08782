r"""Recurrent regularisers, applied by ``Recurrent`` while it trains (``module.train()``).

- **input and output dropout** (``input_dropout``, ``output_dropout``): on the core's input
  features and on its top layer's outputs (what a readout or decoder reads), a fresh mask
  at every step, or with ``variational`` one per sequence (AWD-LSTM's embedding-output and
  output dropout are the variational ones);
- **between-layer dropout** (``dropout``, torch's): a fresh mask at every step, or with
  ``variational`` one mask per sequence for all its steps (Gal & Ghahramani 2016, "A
  theoretically grounded application of dropout in recurrent neural networks"; AWD-LSTM's
  locked dropout);
- **recurrent dropout** (``recurrent_dropout = p``): one mask per sequence and layer on
  :math:`h_{t-1}` where it enters the recurrent weights (Gal & Ghahramani 2016, sec. 4), so the
  carried state itself is never dropped (cells.py, ``keep``);
- **zoneout** (``zoneout = z``; Krueger et al. 2017, "Zoneout: regularizing RNNs by randomly
  preserving hidden activations", eq. 4): each unit of each state component keeps its
  previous value with probability z at each step, :math:`s_t = d_t \odot s_{t-1} + (1 - d_t)
  \odot \tilde s_t`, :math:`d_t \sim \mathrm{Bernoulli}(z)`; in evaluation the expectation,
  :math:`s_t = z s_{t-1} + (1 - z) \tilde s_t` (the paper's sec. 3: "as in dropout, we use
  the expectation of the random noise at test time"); so a zoneout network's evaluation
  function is that mixture, not the plain cell;
- **weight-drop** (``weight_drop = p``; DropConnect on the recurrent matrix, Wan et al. 2013,
  as in Merity, Keskar & Socher 2018, "Regularizing and optimizing LSTM language models"):
  one mask on :math:`W_{hh}` per forward call, shared by every sequence and step, so it
  also works inside torch's fused kernel.

Dropout masks are scaled by 1/(1 - p) (inverted dropout), so every regulariser but zoneout
is the identity in evaluation. Every draw comes from torch's global generator, which the
trainer seeds and checkpoints: a run with regularisers repeats bit for bit and resumes
exactly.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Tuple

import torch
from torch import Tensor


@dataclass(frozen=True)
class Noise:
    """What a ``Recurrent`` applies while training (module docstring); all off by default."""

    input_dropout: float = 0.0  # p on the core's input features
    output_dropout: float = 0.0  # p on the top layer's outputs
    variational: bool = False  # input/between-layer/output dropout: one mask per sequence, not per step
    recurrent_dropout: float = 0.0  # p of dropping h_{t-1} on its way into W_hh (per sequence)
    zoneout: float = 0.0  # z: probability that a state unit keeps its previous value
    weight_drop: float = 0.0  # p of dropping an entry of W_hh (per forward call)

    def __post_init__(self) -> None:
        for name in ("input_dropout", "output_dropout", "recurrent_dropout", "zoneout", "weight_drop"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and 0.0 <= value < 1.0):
                raise ValueError(f"{name} must be a probability in [0, 1), got {value!r}")

    def needs_steps(self, training: bool) -> bool:
        """Whether the forward must run the step path (a mask inside the time loop)."""
        return self.zoneout > 0 or (training and self.recurrent_dropout > 0)


def sequence_dropout(x: Tensor, p: float, training: bool, variational: bool, time_dim: int) -> Tensor:
    """Dropout of x (time on ``time_dim``): per element, or one mask per sequence for all
    its steps (``variational``)."""
    if not training or p == 0:
        return x
    if not variational:
        return torch.nn.functional.dropout(x, p, True)
    shape = list(x.shape)
    shape[time_dim] = 1
    return x * dropout_mask(tuple(shape), p, x)


def dropout_mask(shape: Tuple[int, ...], p: float, like: Tensor) -> Tensor:
    """Bernoulli(1 - p) / (1 - p) entries of ``shape``, ``like``'s dtype and device."""
    return torch.empty(shape, dtype=like.dtype, device=like.device).bernoulli_(1.0 - p).div_(1.0 - p)


def drop_weight(w: Tensor, p: float, training: bool) -> Tensor:
    """DropConnect: w times a fresh mask of its shape (identity in evaluation or at p = 0)."""
    if not training or p == 0:
        return w
    return w * dropout_mask(tuple(w.shape), p, w)


def zone(new: Tuple[Tensor, ...], old: Tuple[Tensor, ...], z: float, training: bool) -> Tuple[Tensor, ...]:
    """Zoneout of one step: each unit keeps its previous value with probability z (training),
    or the expected mixture z * old + (1 - z) * new (evaluation)."""
    if z == 0:
        return new
    if training:
        return tuple(torch.where(torch.rand_like(a) < z, b, a) for a, b in zip(new, old))
    return tuple(torch.lerp(a, b, z) for a, b in zip(new, old))


def recurrent_keep(noise: Noise, training: bool, batch: int, size: int, like: Tensor) -> Optional[Tensor]:
    """Recurrent dropout's per-sequence mask (N, R) for one layer and direction, or None."""
    if not training or noise.recurrent_dropout == 0:
        return None
    return dropout_mask((batch, size), noise.recurrent_dropout, like)

"""Input encoders: what turns a batch of inputs into the (N, L, F) features the core reads."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class OneHot(nn.Module):
    """Token ids (N, L) long -> one-hot features (N, L, V); no parameters."""

    def __init__(self, vocab_size: int) -> None:
        super().__init__()
        self.vocab_size = vocab_size
        self.register_buffer("_dtype_probe", torch.zeros(0), persistent=False)

    def forward(self, tokens: Tensor) -> Tensor:
        return F.one_hot(tokens, self.vocab_size).to(self._dtype_probe.dtype)

    @property
    def out_features(self) -> int:
        return self.vocab_size


class Embed(nn.Embedding):
    """Token ids (N, L) long -> learned embeddings (N, L, E)."""

    @property
    def out_features(self) -> int:
        return self.embedding_dim


class Dense(nn.Identity):
    """Dense features (N, L, F) are read as they are."""

    def __init__(self, features: int) -> None:
        super().__init__()
        self.out_features = features


def make_encoder(input_size: int, tokens: bool, embedding: int) -> nn.Module:
    """Dense for features; for tokens an embedding of size ``embedding`` (0: one-hot)."""
    if not tokens:
        return Dense(input_size)
    return Embed(input_size, embedding) if embedding > 0 else OneHot(input_size)

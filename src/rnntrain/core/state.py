"""The layout of a ``Recurrent``'s state: torch's (D*num_layers, N, size) per component, and
one flat vector per sequence (what online algorithms and the analyses differentiate)."""
from __future__ import annotations

from typing import Tuple, Union

import torch
from torch import Tensor

from .fused import as_tuple, from_tuple

HiddenArg = Union[Tensor, Tuple[Tensor, Tensor], None]


class StateLayout:
    """Mixed into ``Recurrent``: needs ``state_sizes`` (the width of each state component: h,
    then an LSTM's c), ``num_layers``, ``bidirectional`` and ``weight_ih_l0``."""

    def initial_state(self, batch: int, *, device=None, dtype=None) -> HiddenArg:
        """Zero state in torch's layout: (D*num_layers, N, R), a tuple (h, c) for LSTM."""
        if device is None or dtype is None:
            p = self.weight_ih_l0
            device, dtype = device or p.device, dtype or p.dtype
        K = (2 if self.bidirectional else 1) * self.num_layers
        return from_tuple(tuple(torch.zeros(K, batch, size, device=device, dtype=dtype)
                                for size in self.state_sizes))

    def flat_state(self, hx: HiddenArg) -> Tensor:
        """The state as one vector per sequence: (N, S), S = D*num_layers * sum(state_sizes),
        ordered [h of every layer, then c of every layer] (what Jacobians over the state act on)."""
        parts = hx if isinstance(hx, (tuple, list)) else (hx,)
        N = parts[0].shape[1]
        return torch.cat([h.permute(1, 0, 2).reshape(N, -1) for h in parts], dim=1)

    def unflat_state(self, s: Tensor) -> HiddenArg:
        """(N, S) -> torch's state layout, (D*num_layers, N, R) or a tuple (h, c)."""
        K = (2 if self.bidirectional else 1) * self.num_layers
        chunks = s.split([K * size for size in self.state_sizes], dim=1)
        return from_tuple(tuple(c.reshape(s.shape[0], K, size).permute(1, 0, 2)
                                for c, size in zip(chunks, self.state_sizes)))

    def _check_hidden(self, hx: HiddenArg, batch: int, unbatched: bool) -> None:
        K = (2 if self.bidirectional else 1) * self.num_layers
        for h, size in zip(as_tuple(hx), self.state_sizes):
            expected = (K, batch, size)
            if h.dim() != 3 or tuple(h.shape) != expected:
                shape = tuple(h.shape[:1]) + tuple(h.shape[2:]) if unbatched and h.dim() == 3 else tuple(h.shape)
                want = (expected[0], expected[2]) if unbatched else expected
                raise RuntimeError(f"Expected hidden size {want}, got {shape}")


"""Sequences of different lengths in a padded batch: validation, masks, reversal, last steps.

A padded batch is time-major ``(L, N, ...)`` with ``lengths`` (N,) valid steps per sequence
(a CPU int64 tensor, as torch's packing wants; masks go to the data's device).
"""
from __future__ import annotations

from typing import List, Optional, Tuple, Union

import torch
from torch import Tensor

LengthsArg = Union[Tensor, List[int], Tuple[int, ...], None]


def as_lengths(lengths: LengthsArg, batch: int, steps: int) -> Optional[Tensor]:
    """Validated lengths as a CPU int64 (N,) tensor, or None when every sequence is full.

    Lengths live on the CPU (as torch's packing wants them); masks built from them go to
    the input's device."""
    if lengths is None:
        return None
    n = torch.as_tensor(lengths, dtype=torch.int64, device="cpu") if not isinstance(lengths, Tensor) \
        else lengths.detach().to("cpu", torch.int64)
    if n.dim() != 1 or n.shape[0] != batch:
        raise ValueError(f"lengths must be a 1-D tensor of {batch} sequence lengths, got shape {tuple(n.shape)}")
    if batch and (int(n.min()) < 0 or int(n.max()) > steps):
        raise ValueError(f"lengths must lie in [0, {steps}] (the padded length), got "
                         f"{int(n.min())}..{int(n.max())}")
    if batch == 0 or int(n.min()) == steps:
        return None
    return n


def valid_mask(lengths: Tensor, steps: int, device) -> Tensor:
    """(N, L) bool, True where step t < the sequence's length (batch-major)."""
    return (torch.arange(steps)[None, :] < lengths[:, None]).to(device)


def step_mask(lengths: Tensor, steps: int, device) -> Tensor:
    """(L, N, 1) bool, True where step t < the sequence's length (time-major)."""
    return (torch.arange(steps)[:, None] < lengths[None, :]).to(device)[..., None]


def reversal_index(lengths: Tensor, steps: int, device) -> Tensor:
    """(L * N,) flat row index of :func:`reverse_within`: row t*N + n of a (L*N, ...) view
    reads row (len_n - 1 - t)*N + n for t < len_n, itself otherwise (built once, reused)."""
    N = lengths.shape[0]
    t = torch.arange(steps)[:, None]  # (L, 1)
    src = torch.where(t < lengths[None, :], lengths[None, :] - 1 - t, t)  # (L, N)
    return (src * N + torch.arange(N)[None, :]).reshape(-1).to(device)


def reverse_within(x: Tensor, lengths: Tensor, index: Optional[Tensor] = None) -> Tensor:
    """Each sequence of a padded (L, N, ...) tensor reversed within its own length, its
    padding left in place: x'[t, n] = x[len_n - 1 - t, n] for t < len_n (an involution).
    ``index``: :func:`reversal_index` of these lengths, when the caller reverses many times."""
    L, N = x.shape[0], x.shape[1]
    if index is None:
        index = reversal_index(lengths, L, x.device)
    return x.reshape(L * N, *x.shape[2:]).index_select(0, index).view_as(x)


def last_steps(x: Tensor, lengths: Tensor, fallback: Tensor) -> Tensor:
    """x (L, N, H) read at each sequence's last step -> (N, H); ``fallback`` (N, H) for
    sequences of length 0 (their final state is the initial one)."""
    idx = (lengths - 1).clamp(min=0).to(x.device)  # (N,)
    picked = x[idx, torch.arange(x.shape[1], device=x.device)]  # (N, H)
    empty = (lengths == 0).to(x.device)[:, None]
    return torch.where(empty, fallback, picked) if bool(empty.any()) else picked

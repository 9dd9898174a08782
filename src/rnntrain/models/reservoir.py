r"""Reservoir weights of an echo state network, and their config (``[model.reservoir]``).

The reservoir is the core's :func:`rnntrain.core.cells.reservoir_cell`,

.. math::  x_t = (1 - a)\, x_{t-1} + a \tanh(W_{in} u_t + b + W x_{t-1}),

with random weights that are never trained (Jaeger 2001, "The 'echo state' approach to
analysing and training recurrent neural networks", GMD Report 148, sec. 4):

- ``W`` (H, H): a fraction ``density`` of entries from N(0, 1), the rest 0, rescaled to
  spectral radius :math:`\rho` (``model.spectral_radius``): :math:`W = \rho W_0 / \max|\lambda(W_0)|`;
- ``W_in`` (H, F): a fraction ``input_density`` of entries :math:`\pm` ``input_scaling``
  (equiprobable signs), the rest 0 (reservoirpy's default ``bernoulli`` initialiser);
- ``b`` (H,): entries from U(-``bias_scaling``, ``bias_scaling``) (0: no bias).

Every draw comes from one ``torch.Generator``, in this order (W, W_in, b), in float64, so
the same seed gives the same reservoir bit for bit whatever the dtype it is cast to.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import torch
from torch import Tensor

from ..config.schema import check

SPARSE_MODES = ("auto", "dense", "sparse")


@dataclass(frozen=True)
class ReservoirConfig:
    """The fixed weights of ``cell = "esn"`` (and of ``init = "esn"`` for trained cells)."""

    leak_rate: float = 1.0  # a in (0, 1]; 1 = no leak (Jaeger 2001); reservoirpy's `lr`
    input_scaling: float = 1.0  # W_in entries are +-input_scaling (reservoirpy's default 1)
    input_density: float = 0.1  # fraction of nonzero W_in entries (reservoirpy's input_connectivity)
    bias_scaling: float = 0.0  # b entries from U(-s, s); 0 = no bias (reservoirpy's default)
    density: float = 0.1  # fraction of nonzero W entries (reservoirpy's rc_connectivity)
    readout_inputs: bool = False  # the readout reads [x_t; u_t] instead of x_t alone
    # storage of W when collecting states: auto = sparse CSR when it is faster (H >= 400, density <= 0.3)
    sparse: str = "auto"

    def __post_init__(self) -> None:
        check(0.0 < self.leak_rate <= 1.0, f"reservoir leak_rate must be in (0, 1], got {self.leak_rate}")
        check(self.input_scaling >= 0, f"reservoir input_scaling must be >= 0, got {self.input_scaling}")
        check(0.0 < self.input_density <= 1.0,
              f"reservoir input_density must be in (0, 1], got {self.input_density}")
        check(self.bias_scaling >= 0, f"reservoir bias_scaling must be >= 0, got {self.bias_scaling}")
        check(0.0 < self.density <= 1.0, f"reservoir density must be in (0, 1], got {self.density}")
        check(self.sparse in SPARSE_MODES,
              f"reservoir sparse must be one of {', '.join(SPARSE_MODES)}, got '{self.sparse}'")


def use_sparse(config: ReservoirConfig, hidden: int) -> bool:
    """Whether W is multiplied as a CSR matrix (int32 indices): measured on CPU, float64,
    1 thread, batch 1 (``addmv_``), CSR beats the dense product from about 400 units at
    density <= 0.3 (500 units, density 0.1: 11 vs 34 us a step; 2000 units: 0.17 vs 1.1 ms);
    below 300 units the dense product wins whatever the density."""
    if config.sparse != "auto":
        return config.sparse == "sparse"
    return hidden >= 400 and config.density <= 0.3


def _device(generator: Optional[torch.Generator]):
    return generator.device if generator is not None else None


def sparse_recurrent(H: int, rho: float, density: float,
                     generator: Optional[torch.Generator] = None) -> Tensor:
    """W (H, H) float64: ``density`` of entries N(0, 1), rescaled to spectral radius ``rho``."""
    dev = _device(generator)
    values = torch.randn(H, H, generator=generator, dtype=torch.float64, device=dev)
    mask = torch.rand(H, H, generator=generator, dtype=torch.float64, device=dev) < density
    w = values * mask
    radius = torch.linalg.eigvals(w).abs().max()  # max |eigenvalue|
    if radius == 0:  # a tiny, very sparse W can be nilpotent: no rescaling possible
        return w
    return w * (rho / radius)


def sparse_input(H: int, F: int, scaling: float, density: float,
                 generator: Optional[torch.Generator] = None) -> Tensor:
    """W_in (H, F) float64: ``density`` of entries +-scaling, the rest 0."""
    dev = _device(generator)
    u = torch.rand(H, F, generator=generator, dtype=torch.float64, device=dev)
    # 1 - 2 [u < 0.5] is +-1 in u's float64 (torch.where on two Python scalars would give float32)
    signs = 1.0 - 2.0 * (u < 0.5).to(u.dtype)
    mask = torch.rand(H, F, generator=generator, dtype=torch.float64, device=dev) < density
    return (signs * scaling).masked_fill(~mask, 0.0)


def reservoir_weights(H: int, F: int, rho: float, config: ReservoirConfig,
                      generator: Optional[torch.Generator] = None) -> Tuple[Tensor, Tensor, Tensor]:
    """(W_in (H, F), W (H, H), b (H,)) in float64, drawn in that documented order (W first)."""
    w = sparse_recurrent(H, rho, config.density, generator)
    w_in = sparse_input(H, F, config.input_scaling, config.input_density, generator)
    u = torch.rand(H, generator=generator, dtype=torch.float64, device=_device(generator))
    b = (2 * u - 1) * config.bias_scaling
    return w_in, w, b


def spectral_radius(w: Tensor) -> float:
    """max |eigenvalue| of a square matrix (dense or sparse), computed in float64."""
    if w.layout != torch.strided:
        w = w.to_dense()
    return float(torch.linalg.eigvals(w.detach().double()).abs().max())


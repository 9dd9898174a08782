r"""Initialisation schemes for a :class:`rnntrain.Recurrent`, each from its source.

``initialize(rnn, scheme, *, spectral_radius, generator)`` rewrites the parameters of
every layer and direction in place. Every scheme first draws torch's default (below)
for *all* parameters, then replaces the recurrent weights (and, for "identity", the
biases). With a ``generator`` the result is a function of the seed alone: the same
seed gives the same bits on CPU, whatever the global RNG did before.

``weight_hh`` of a cell with ``G`` gates is ``(G*H, H)``: ``G`` square blocks of ``H``
rows, one per gate in torch's order (LSTM i, f, g, o; GRU r, z, n). The structured
schemes treat each block as its own recurrent matrix ``W`` (H, H):

- ``"default"``: every weight and bias from :math:`U(-1/\sqrt{H}, 1/\sqrt{H})`
  (torch.nn.RNN/LSTM/GRU's ``reset_parameters``).
- ``"orthogonal"``: each block an independent Haar-random orthogonal matrix, the Q of
  the QR decomposition of a standard Gaussian with the signs of diag(R) moved into Q
  (Mezzadri 2007, "How to generate random matrices from the classical compact groups",
  eq. 5.1). Orthogonal recurrent weights preserve norms along the unrolled chain:
  Saxe, McClelland & Ganguli 2014, "Exact solutions to the nonlinear dynamics of
  learning in deep linear neural networks", sec. 3.
- ``"identity"``: each block ``spectral_radius * I`` and both biases zero, input
  weights as default: the IRNN of Le, Jaitly & Hinton 2015, "A Simple Way to
  Initialize Recurrent Networks of Rectified Linear Units" (meant for ReLU Elman
  networks, where zero input keeps the state exactly; they use ``spectral_radius=1``).
- ``"spectral"``: each block :math:`W_0 \sim N(0, 1/H)` entrywise, rescaled to
  :math:`W = \rho\, W_0 / \max|\lambda(W_0)|` so that its spectral radius is exactly
  ``spectral_radius`` :math:`\rho` (Jaeger 2001, "The 'echo state' approach to
  analysing and training recurrent neural networks", GMD Report 148, sec. 4: scale a
  random reservoir to a chosen spectral radius, < 1 for the echo state property).

- ``"esn"``: echo-state initialisation for a trained network: each block a sparse
  reservoir matrix (a fraction ``density`` of N(0, 1) entries, rescaled to spectral
  radius ``spectral_radius``) and ``weight_ih`` entries :math:`\pm` ``input_scaling`` on
  a fraction ``input_density`` (:mod:`rnntrain.models.reservoir`; Jaeger 2001), biases as
  default.

- ``"sparse"``: the sparse initialisation of Martens 2010 (sec. 5) as used for RNNs by
  Sutskever, Martens, Dahl & Hinton 2013 (sec. 4): each unit (row of a block) gets
  ``connections`` (15) incoming recurrent weights from N(0, 1), the rest zero, and the
  block is rescaled to spectral radius ``spectral_radius`` (they use 1.1 for tanh units);
  biases zero; with ``input_scale > 0`` the input weights are N(0, input_scale^2).

The structured matrices are built in float64 and then cast, so a float32 network is
orthogonal (or has the requested radius) to float32 rounding.

After any scheme, ``forget_bias`` :math:`b_f \ne 0` (LSTM only) sets the forget gate's bias:
rows ``H:2H`` of every ``bias_ih`` to :math:`b_f` and of every ``bias_hh`` to 0, so the
effective bias ``bias_ih + bias_hh`` is exactly :math:`b_f` in every layer and direction.
At zero input and state the cell then starts by keeping :math:`\sigma(b_f)` of its content
per step (0.73 at 1, 0.95 at 3) instead of about :math:`\sigma(0) = 1/2` (the default's
bias is near 0), which halves a memory in every step. Gers, Schmidhuber & Cummins 2000,
"Learning to Forget: Continual Prediction with LSTM" (Neural Computation 12(10)), who
introduced the forget gate, start it open with a positive bias, so that the cell first
behaves like the original LSTM's constant error carousel (which keeps its content
exactly); Jozefowicz, Zaremba & Sutskever 2015, "An Empirical Exploration of Recurrent
Network Architectures" (ICML): a forget-gate bias of 1 closes the gap between the LSTM
and the GRU on their tasks.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor, nn

from ..core import Recurrent
from ..errors import UserError
from .reservoir import sparse_input, sparse_recurrent

INIT_SCHEMES = ("default", "orthogonal", "identity", "spectral", "esn", "sparse")


def initialize(rnn: nn.Module, scheme: str = "default", *, spectral_radius: float = 1.0,
               generator: Optional[torch.Generator] = None, density: float = 0.1,
               input_scaling: float = 1.0, input_density: float = 1.0, connections: int = 15,
               input_scale: float = 0.0, forget_bias: float = 0.0) -> nn.Module:
    """Initialise ``rnn`` in place by ``scheme`` (one of :data:`INIT_SCHEMES`); returns it.

    Args:
        rnn: a :class:`rnntrain.Recurrent` (a ``torch.nn.RNN/LSTM/GRU`` without
            ``proj_size`` works too: same parameter names and layouts).
        scheme: "default", "orthogonal", "identity" or "spectral" (module docstring).
        spectral_radius: the scale of each recurrent block for "identity" and its
            spectral radius for "spectral"; must be a finite number >= 0 (> 0 for
            "spectral"); ignored by the other schemes.
        generator: the ``torch.Generator`` every draw comes from (None: the global RNG).
        forget_bias: LSTM only: 0 keeps the scheme's biases; otherwise the effective
            forget-gate bias of every layer and direction, set after the scheme (module
            docstring; Gers et al. 2000, Jozefowicz et al. 2015).
    """
    if scheme not in INIT_SCHEMES:
        raise UserError(f"unknown init scheme {scheme!r}; choose one of {', '.join(INIT_SCHEMES)}")
    rho = spectral_radius
    if (isinstance(rho, bool) or not isinstance(rho, (int, float)) or not math.isfinite(rho)
            or rho < 0 or (scheme in ("spectral", "esn", "sparse") and rho == 0)):
        raise UserError(f"spectral_radius must be a finite number >= 0 (> 0 for 'spectral'), "
                        f"got {rho!r}")
    _check_forget_bias(rnn, forget_bias)
    with torch.no_grad():
        _default(rnn, generator)
        if scheme != "default":
            _structured(rnn, scheme, rho, generator, density, input_scaling, input_density,
                        connections, input_scale)
        if forget_bias != 0:
            _set_forget_bias(rnn, forget_bias)
        if isinstance(rnn, Recurrent):
            rnn.constrain_()  # within the cell's bound (IndRNN's |u| <= recurrent_max)
    return rnn


def _check_forget_bias(rnn: nn.Module, b_f: float) -> None:
    if (isinstance(b_f, bool) or not isinstance(b_f, (int, float)) or not math.isfinite(b_f)):
        raise UserError(f"forget_bias must be a finite number, got {b_f!r}")
    if b_f != 0 and _forget_gate(rnn) is None:
        raise UserError(f"forget_bias is an LSTM forget gate's bias, and this cell is "
                        f"{getattr(rnn, 'mode', type(rnn).__name__)}: use --cell lstm or drop model.forget_bias")
    if b_f != 0 and not getattr(rnn, "bias", True):
        raise UserError("forget_bias needs the LSTM's biases: drop model.bias = false or model.forget_bias")


def _forget_gate(rnn: nn.Module) -> Optional[int]:
    """The forget gate's block of a cell's gates (None: the cell has none); torch's LSTM: 1."""
    cell = getattr(rnn, "cell", None)
    if cell is not None:
        return cell.forget_gate
    return 1 if getattr(rnn, "mode", None) == "LSTM" else None


def _set_forget_bias(rnn: nn.Module, b_f: float) -> None:
    """Forget block (rows kH:(k+1)H, k the cell's forget gate; torch's gate order i, f, g, o)
    of the bias that holds it (bias_ih; a normalised cell's bias_hh) to ``b_f`` and of the
    other to 0: the gate's bias is exactly ``b_f``."""
    H, k = rnn.hidden_size, _forget_gate(rnn)
    holder = getattr(getattr(rnn, "cell", None), "forget_bias_in", "bias_ih")
    for name, b in rnn.named_parameters():
        if name.startswith(("bias_ih", "bias_hh")):
            b[k * H:(k + 1) * H] = b_f if name.startswith(holder) else 0.0


def _structured(rnn: nn.Module, scheme: str, rho: float, generator: Optional[torch.Generator],
                density: float, input_scaling: float, input_density: float, connections: int,
                input_scale: float) -> None:
    """Every scheme but "default", over torch's default draw (module docstring)."""
    for name, w_hh in rnn.named_parameters():
        if not name.startswith("weight_hh"):
            continue
        if w_hh.dim() == 1:  # one recurrent weight per unit (IndRNN): only a scale applies
            if scheme != "identity":
                raise UserError(f"init '{scheme}' shapes recurrent matrices; this cell has one "
                                f"recurrent weight per unit: use --init default or --init identity")
            w_hh.fill_(rho)
            continue
        if getattr(rnn, "proj_size", 0):
            raise UserError(f"init '{scheme}' shapes square recurrent blocks; a projected LSTM's are "
                            f"(H, proj): use --init default, or drop --proj")
        H = w_hh.shape[1]
        for block in w_hh.split(H, dim=0):  # G views of (H, H), one per gate
            if scheme == "orthogonal":
                block.copy_(_orthogonal(H, generator))
            elif scheme == "esn":
                block.copy_(sparse_recurrent(H, rho, density, generator))
            elif scheme == "identity":
                block.copy_(rho * torch.eye(H, dtype=torch.float64))
            elif scheme == "sparse":
                block.copy_(_sparse(H, rho, connections, generator))
            else:
                block.copy_(_spectral(H, rho, generator))
    if scheme == "esn":
        for name, w_ih in rnn.named_parameters():
            if name.startswith("weight_ih"):
                w_ih.copy_(sparse_input(*w_ih.shape, input_scaling, input_density, generator))
    if scheme == "sparse" and input_scale > 0:
        for name, w_ih in rnn.named_parameters():
            if name.startswith("weight_ih"):
                w_ih.copy_(torch.randn(w_ih.shape, generator=generator, dtype=torch.float64,
                                       device=generator.device if generator is not None else None)
                           * input_scale)
    if scheme in ("identity", "sparse"):
        for name, b in rnn.named_parameters():
            if name.startswith("bias"):
                b.zero_()


def _default(rnn: nn.Module, generator: Optional[torch.Generator]) -> None:
    """torch's ``reset_parameters``: every parameter from U(-1/sqrt(H), 1/sqrt(H))."""
    if generator is None:
        rnn.reset_parameters()
        return
    if isinstance(rnn, Recurrent):  # its own inits (a cell's gains, time constants, ...)
        rnn.reset_parameters(generator)
        return
    stdv = 1.0 / math.sqrt(rnn.hidden_size)
    for p in rnn.parameters():  # registration order, so the draw order is fixed
        # drawn on the generator's device, then copied: a CPU seed also fixes CUDA weights
        sample = torch.empty(p.shape, dtype=p.dtype, device=generator.device)
        p.copy_(sample.uniform_(-stdv, stdv, generator=generator))


def _gaussian(H: int, generator: Optional[torch.Generator]) -> Tensor:
    device = generator.device if generator is not None else None
    return torch.randn(H, H, generator=generator, dtype=torch.float64, device=device)


def _orthogonal(H: int, generator: Optional[torch.Generator]) -> Tensor:
    """Haar-random orthogonal (H, H) in float64 (Mezzadri 2007, eq. 5.1)."""
    q, r = torch.linalg.qr(_gaussian(H, generator))
    # QR is unique only up to the signs of diag(R); fixing them makes Q Haar-distributed
    return q * torch.where(torch.diagonal(r) < 0, -1.0, 1.0)  # column j times sign(R_jj)


def _spectral(H: int, rho: float, generator: Optional[torch.Generator]) -> Tensor:
    """N(0, 1/H) entries rescaled to spectral radius ``rho`` (Jaeger 2001), float64."""
    w = _gaussian(H, generator) / math.sqrt(H)
    radius = torch.linalg.eigvals(w).abs().max()  # max |eigenvalue|
    return w * (rho / radius)


def _sparse(H: int, rho: float, connections: int, generator: Optional[torch.Generator]) -> Tensor:
    """(H, H): ``connections`` N(0, 1) entries per row at random columns, rescaled to spectral
    radius ``rho`` (Martens 2010 sec. 5; Sutskever et al. 2013 sec. 4), float64."""
    device = generator.device if generator is not None else None
    k = min(connections, H)
    cols = torch.rand(H, H, generator=generator, dtype=torch.float64, device=device).argsort(1)[:, :k]
    w = torch.zeros(H, H, dtype=torch.float64, device=device)
    w.scatter_(1, cols, torch.randn(H, k, generator=generator, dtype=torch.float64, device=device))
    radius = torch.linalg.eigvals(w).abs().max()
    return w * (rho / radius) if radius > 0 else w

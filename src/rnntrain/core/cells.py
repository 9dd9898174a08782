r"""The recurrent cells, each written once as a single step.

Every cell is split into the part that depends only on the input (an affine map,
``gx = W_ih x + b_ih``, which can be computed for all time steps in one matrix product)
and the recurrence ``recur(gx, state, W_hh, b_hh) -> state``. The single step
``(x_t, state) -> state`` is the composition of the two (:meth:`Cell.step`). Every
training algorithm, analysis and generator calls these functions; the equations are
never restated elsewhere.

Shapes (``N`` batch, ``H_in`` input size, ``H`` hidden size, ``G`` gates of the cell)::

    x      (N, H_in)          gx     (N, G*H)
    W_ih   (G*H, H_in)        b_ih   (G*H,)
    W_hh   (G*H, H)           b_hh   (G*H,)
    state  tuple of (N, H):   (h,) for Elman and GRU, (h, c) for LSTM
    extra  the cell's own further parameters (:class:`Extra`), passed after b_hh

Weight layouts and gate orders are exactly those of ``torch.nn.RNN/LSTM/GRU``, so
their state_dicts load unchanged; an LSTM with a projection (torch's ``proj_size = R``)
has ``W_hh (4H, R)``, an extra ``W_hr (R, H)`` and state ``(h (N, R), c (N, H))``.

``keep`` (N, R), when given, multiplies ``h_{t-1}`` where it enters the recurrent weights
(and nowhere else: not a carried state, not a cell's leak): variational recurrent dropout's
per-sequence mask (Gal & Ghahramani 2016; core/regularize.py). Every cell reads ``h`` for
its recurrent product through :func:`recurrent_input`.

``recur`` also runs P networks at once without ``vmap`` (population evaluation): with
stacked recurrent weights ``W_hh (P, G*H, H)``, ``b_hh (P, 1, G*H)`` and states and
``gx`` of shape ``(P, N, ...)``, every recurrent product is one batched matmul
(:func:`_linear`); the equations are the same lines of code.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Callable, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

State = Tuple[Tensor, ...]


def _linear(h: Tensor, w: Tensor, b: Optional[Tensor] = None) -> Tensor:
    """``h @ w.T + b``: h (N, I), w (O, I) dense or sparse (CSR/COO), b (O,); or P networks
    at once: h (P, N, I), a stack w (P, O, I), b (P, 1, O) (F.linear has neither batched
    nor sparse weights)."""
    if w.dim() == 3:  # (P, N, I) @ (P, I, O): one batched matmul
        out = torch.bmm(h, w.transpose(1, 2))
        return out if b is None else out + b
    if w.layout != torch.strided:
        out = torch.mm(w, h.t()).t()
        return out if b is None else out + b
    return F.linear(h, w, b)


def _add_linear(gx: Tensor, h: Tensor, w: Tensor, b: Optional[Tensor]) -> Tensor:
    """``gx + h @ w.T + b`` (shapes of :func:`_linear`); stacked weights: one fused
    ``baddbmm`` (the sum is formed in the product's output, no extra pass over memory)."""
    if w.dim() == 3:
        out = torch.baddbmm(gx, h, w.transpose(1, 2))  # (P, N, O)
        return out if b is None else out.add_(b)  # in place on a fresh tensor: autograd-safe
    if w.layout == torch.strided and h.dim() == 2 and gx.dim() == 2:
        out = torch.addmm(gx, h, w.t())  # one kernel, forwards and backwards
        return out if b is None else out + b
    return gx + _linear(h, w, b)


def recurrent_input(h: Tensor, keep: Optional[Tensor]) -> Tensor:
    """``h_{t-1}`` as the recurrent weights see it: times the recurrent-dropout mask, if any."""
    return h if keep is None else h * keep


def _elman(act: Callable[[Tensor], Tensor]):
    def recur(gx: Tensor, state: State, w_hh: Tensor, b_hh: Optional[Tensor], *,
              keep: Optional[Tensor] = None) -> State:
        r"""Elman step: :math:`h_t = \phi(W_{ih} x_t + b_{ih} + W_{hh} h_{t-1} + b_{hh})`."""
        (h,) = state
        return (act(_add_linear(gx, recurrent_input(h, keep), w_hh, b_hh)),)

    return recur


def _lstm_recur(gx: Tensor, state: State, w_hh: Tensor, b_hh: Optional[Tensor],
                w_hr: Optional[Tensor] = None, *, keep: Optional[Tensor] = None) -> State:
    r"""LSTM step (Hochreiter & Schmidhuber 1997, with forget gate; torch gate order i, f, g, o):

    .. math::
        i_t &= \sigma(W_{ii} x_t + b_{ii} + W_{hi} h_{t-1} + b_{hi}) \\
        f_t &= \sigma(W_{if} x_t + b_{if} + W_{hf} h_{t-1} + b_{hf}) \\
        g_t &= \tanh(W_{ig} x_t + b_{ig} + W_{hg} h_{t-1} + b_{hg}) \\
        o_t &= \sigma(W_{io} x_t + b_{io} + W_{ho} h_{t-1} + b_{ho}) \\
        c_t &= f_t \odot c_{t-1} + i_t \odot g_t \\
        h_t &= o_t \odot \tanh(c_t)

    With a projection (Sak, Senior & Beaufays 2014, "Long short-term memory recurrent neural
    network architectures for large scale acoustic modeling"; torch's ``proj_size``):
    :math:`h_t = W_{hr} (o_t \odot \tanh(c_t))`, h of R < H units, c of H.
    """
    h, c = state
    gates = _add_linear(gx, recurrent_input(h, keep), w_hh, b_hh)  # (N, 4H)
    i, f, g, o = gates.chunk(4, dim=-1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    h = torch.sigmoid(o) * torch.tanh(c)
    return (h if w_hr is None else _linear(h, w_hr), c)


def _gru_recur(gx: Tensor, state: State, w_hh: Tensor, b_hh: Optional[Tensor], *,
               keep: Optional[Tensor] = None) -> State:
    r"""GRU step (Cho et al. 2014; torch gate order r, z, n):

    .. math::
        r_t &= \sigma(W_{ir} x_t + b_{ir} + W_{hr} h_{t-1} + b_{hr}) \\
        z_t &= \sigma(W_{iz} x_t + b_{iz} + W_{hz} h_{t-1} + b_{hz}) \\
        n_t &= \tanh(W_{in} x_t + b_{in} + r_t \odot (W_{hn} h_{t-1} + b_{hn})) \\
        h_t &= (1 - z_t) \odot n_t + z_t \odot h_{t-1}
    """
    (h,) = state
    return (gru_combine(gx, _linear(recurrent_input(h, keep), w_hh, b_hh), h),)


def gru_combine(ax: Tensor, ah: Tensor, h: Tensor) -> Tensor:
    """The GRU's gates from its input part ``ax`` and recurrent part ``ah`` (both (N, 3H), gate
    order r, z, n; ``ah`` with b_hh) and h (N, H) -> the new h (the equations above)."""
    x_r, x_z, x_n = ax.chunk(3, dim=-1)
    h_r, h_z, h_n = ah.chunk(3, dim=-1)
    r = torch.sigmoid(x_r + h_r)
    z = torch.sigmoid(x_z + h_z)
    n = torch.tanh(x_n + r * h_n)
    return n + z * (h - n)


@dataclass(frozen=True)
class Extra:
    """A parameter of a cell beyond torch's four, one per layer and direction: registered
    as ``{name}_l{k}[_reverse]`` after torch's, shape ``shape(H)``, initialised by ``init``:
    "one", "zero", "uniform" (torch's U(-1/sqrt(H), 1/sqrt(H))) or "log_uniform:a:b"
    (log-uniform in [a, b]; the log is stored)."""

    name: str
    shape: Callable[[int], Tuple[int, ...]]
    init: str = "uniform"
    low: Optional[float] = None  # updates project it to at least this (Recurrent.constrain_)


def fill_parameter(p: Tensor, init: str, stdv: float, generator: Optional[torch.Generator]) -> None:
    """Initialise ``p`` in place (no grad): "uniform" (U(-stdv, stdv)), "one", "zero",
    "unit" (U(0, 1)) or "log_uniform:a:b" (the log of a log-uniform draw in [a, b])."""
    if init in ("one", "zero"):
        p.fill_(1.0 if init == "one" else 0.0)
        return
    lo, hi = (-stdv, stdv) if init == "uniform" else (0.0, 1.0)
    if init.startswith("log_uniform:"):
        a, b = (float(v) for v in init.split(":")[1:])
        lo, hi = math.log(a), math.log(b)
    if generator is None:
        p.uniform_(lo, hi)
    else:  # drawn on the generator's device, then copied: a CPU seed also fixes CUDA weights
        sample = torch.empty(p.shape, dtype=p.dtype, device=generator.device)
        p.copy_(sample.uniform_(lo, hi, generator=generator))


@dataclass(frozen=True)
class Cell:
    """One recurrent cell type: its gate count, state arity, recurrence and fused kernel.

    ``recur(gx, state, w_hh, b_hh, *extra, keep=None) -> state`` is the whole cell once the
    input projection ``gx`` is known; :meth:`step` is the single step from a raw input.
    """

    name: str  # "rnn_tanh", "rnn_relu", "lstm", "gru", ...
    gates: int  # G: rows of W_ih / W_hh per hidden unit
    state_arity: int  # 1 for (h,), 2 for (h, c)
    recur: Callable[..., State]
    fused: Optional[Callable]  # torch's fused multi-layer kernel (same math, one call); None: step path only
    # True when b_hh only ever enters as gx + b_hh, so recur(gx + b_hh, s, W, None) is the
    # same step (a batched caller adds it once, not at every step); False for GRU (r * b_hn)
    bias_in_gx: bool = False
    extras: Tuple[Extra, ...] = ()  # the cell's own further parameters, passed after b_hh
    diagonal: bool = False  # W_hh is a vector (G*H,): each unit feeds back to itself only
    bound: float = 0.0  # > 0: |W_hh| <= bound, clamped in recur and projected after updates
    forget_gate: Optional[int] = None  # the forget gate's block of the gates (forget_bias)
    forget_bias_in: str = "bias_ih"  # which bias holds it (a normalised cell: bias_hh)
    projectable: bool = False  # takes torch's proj_size (W_hr after b_hh)
    reads_dt: bool = False  # each step's length Δt is the raw input's last feature (timed CTRNN)
    # a twin with the same Jacobian sparsity and no exact zeros (ReLU -> tanh, no clamps), on
    # which sparsity patterns are probed (SnAp); None: this cell has none to avoid
    smooth: Optional["Cell"] = None

    def advance(self, gx: Tensor, state: State, weights, keep: Optional[Tensor] = None,
                dt: Optional[Tensor] = None) -> State:
        """``recur`` with one layer's ``weights`` (W_hh, b_hh, *extra), the recurrent-dropout
        mask ``keep`` and, for a cell that reads it, the step's Δt (N, 1)."""
        if self.reads_dt:
            return self.recur(gx, state, *weights, keep=keep, dt=dt)
        return self.recur(gx, state, *weights, keep=keep)

    def step(self, x: Tensor, state: State, w_ih: Tensor, w_hh: Tensor,
             b_ih: Optional[Tensor] = None, b_hh: Optional[Tensor] = None, *extra: Tensor,
             dt: Optional[Tensor] = None) -> State:
        """Single step ``(x_t, state) -> state``; x (N, H_in), state tuple of (N, H)."""
        return self.advance(F.linear(x, w_ih, b_ih), state, (w_hh, b_hh, *extra), dt=dt)

    @property
    def constrained(self) -> bool:
        """Whether updates must project the weights back (``bound``, an Extra's ``low``)."""
        return self.bound > 0 or any(e.low is not None for e in self.extras)

    def hh_shape(self, H: int, R: int) -> Tuple[int, ...]:
        """W_hh's shape for H units whose recurrent input has R (= H, or proj_size)."""
        return (self.gates * H,) if self.diagonal else (self.gates * H, R)


# torch notes on every projected-LSTM call that its oneDNN backend falls back to its default
# kernel: a fact about speed (docs/cells.md measures it), not something a user can act on
warnings.filterwarnings("ignore", message="LSTM with projections is not supported with oneDNN")


def _vf(name: str):
    # torch's own entry points to the fused RNN kernels (what nn.RNN/LSTM/GRU call);
    # looked up lazily so that importing rnntrain never depends on their presence.
    def call(*args):
        return getattr(torch._VF, name)(*args)

    return call


CELLS = {
    "rnn_tanh": Cell("rnn_tanh", 1, 1, _elman(torch.tanh), _vf("rnn_tanh"), True),
    "rnn_relu": Cell("rnn_relu", 1, 1, _elman(torch.relu), _vf("rnn_relu"), True,
                     smooth=Cell("rnn_tanh", 1, 1, _elman(torch.tanh), _vf("rnn_tanh"), True)),
    "lstm": Cell("lstm", 4, 2, _lstm_recur, _vf("lstm"), True, forget_gate=1, projectable=True),
    "gru": Cell("gru", 3, 1, _gru_recur, _vf("gru")),
}


def reservoir_cell(leak_rate: float = 1.0) -> Cell:
    r"""The echo state network's reservoir: leaky-integrator tanh units (Jaeger 2001,
    "The 'echo state' approach...", GMD Report 148, eq. 3; Jaeger et al. 2007, "Optimization
    and applications of echo state networks with leaky-integrator neurons", eq. 2):

    .. math::  x_t = (1 - a)\, x_{t-1} + a \tanh(W_{in} u_t + b + W x_{t-1})

    with ``gx = W_in u_t + b`` (``W_ih``, ``b_ih``), ``W = W_hh`` (dense, or sparse CSR for a
    large sparse reservoir) and leak rate ``a`` in (0, 1] (``a = 1``: the plain tanh Elman
    step). Output feedback enters as an input column (Jaeger's :math:`W^{back} y_{t-1}` is
    ``W_in``'s column of the fed-back variable). No fused kernel: it always runs the step path.
    """
    a = float(leak_rate)
    if not 0.0 < a <= 1.0:
        raise ValueError(f"leak_rate must be in (0, 1], got {leak_rate!r}")

    def recur(gx: Tensor, state: State, w_hh: Tensor, b_hh: Optional[Tensor], *,
              keep: Optional[Tensor] = None) -> State:
        (x,) = state  # (N, H)
        pre = _add_linear(gx, recurrent_input(x, keep), w_hh, None)  # (N, H)
        if b_hh is not None:
            pre = pre + b_hh
        return ((1.0 - a) * x + a * torch.tanh(pre),) if a < 1.0 else (torch.tanh(pre),)

    return Cell("reservoir", 1, 1, recur, None, True)


CELLS["reservoir"] = reservoir_cell(1.0)  # leak rate 1; reservoir_cell(a) for a leaky one


def _local_recur(gx: Tensor, state: State, w_hh: Tensor, b_hh: Optional[Tensor], *,
                 keep: Optional[Tensor] = None) -> State:
    r"""Locally recurrent step (activation feedback: every unit feeds back only to itself;
    Frasconi, Gori & Soda 1992; the simplest of the locally recurrent networks of Campolucci,
    Uncini, Piazza & Rao 1999, "On-line learning algorithms for locally recurrent neural
    networks", IEEE TNN 10(2)):

    .. math::  h_t = \tanh(W_{ih} x_t + b_{ih} + \operatorname{diag}(W_{hh}) \odot h_{t-1} + b_{hh})

    ``W_hh`` keeps torch's (H, H) layout so that Recurrent, state_dicts and the init schemes
    work unchanged; only its diagonal is read (the off-diagonal entries get zero gradient).
    The state Jacobian is diagonal, which is what makes exact online gradients cheap.
    """
    (h,) = state
    d = torch.diagonal(w_hh, dim1=-2, dim2=-1)  # (H,), or (P, H) for stacked weights
    pre = gx + (d.unsqueeze(-2) if w_hh.dim() == 3 else d) * recurrent_input(h, keep)  # (N, H)
    if b_hh is not None:
        pre = pre + b_hh
    return (torch.tanh(pre),)


CELLS["local"] = Cell("local", 1, 1, _local_recur, None, True)  # no fused kernel: step path only


def get_cell(mode: str, nonlinearity: str = "tanh") -> Cell:
    """Cell for a torch-style ``mode`` ("RNN", "LSTM", "GRU", any case) and Elman nonlinearity."""
    if isinstance(mode, Cell):  # a configured cell, e.g. reservoir_cell(leak_rate)
        return mode
    m = mode.lower()
    if m in ("rnn", "elman"):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"Unknown nonlinearity '{nonlinearity}'. Select from 'tanh' or 'relu'.")
        return CELLS["rnn_" + nonlinearity]
    if m in CELLS:
        return CELLS[m]
    raise ValueError(f"Unknown mode '{mode}': choose one of 'RNN', 'LSTM', 'GRU' "
                     f"(or {', '.join(repr(c) for c in CELLS)}).")

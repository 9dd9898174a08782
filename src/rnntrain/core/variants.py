r"""Cell variants beyond torch's three, each one step written once (shapes as in cells.py).

Layer-normalised LSTM and GRU, the peephole LSTM, IndRNN and the continuous-time RNN. None
has a fused torch kernel: they run the step path (and everything built on the cells' own
steps: online gradients, populations, Hessian-free, the analyses). Their further parameters
are :class:`~.cells.Extra` entries, registered per layer and direction after torch's four, so
state_dicts stay torch-shaped where torch has the cell and self-describing where it does not.

With stacked weights (P networks, population evaluation) a vector parameter arrives as
(P, 1, K): every line below broadcasts over the leading population axis unchanged.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from .cells import CELLS, Cell, Extra, State, _add_linear, _linear, gru_combine, recurrent_input

LN_EPS = 1e-5  # torch.nn.LayerNorm's


def layer_norm(a: Tensor, gain: Tensor, shift: Optional[Tensor] = None) -> Tensor:
    r""":math:`\mathrm{LN}(a) = g \odot (a - \mu) / \sqrt{\sigma^2 + \epsilon} + s` over the last
    axis (Ba, Kiros & Hinton 2016, eq. 4): torch's fused normalisation, then the gain and
    shift applied apart, so that they may carry a population axis ((P, 1, K) with a (P, N, K)
    input)."""
    out = F.layer_norm(a, (gain.shape[-1],), eps=LN_EPS) * gain  # a constant shape: exporters trace it
    return out if shift is None else out + shift


def _gains(n: int):
    return lambda H: (n * H,)


def _ln_lstm_recur(gx: Tensor, state: State, w_hh: Tensor, b_hh: Optional[Tensor],
                   g_x: Tensor, g_h: Tensor, g_c: Tensor, s_c: Tensor, *,
                   keep: Optional[Tensor] = None) -> State:
    r"""Layer-normalised LSTM step (Ba, Kiros & Hinton 2016, "Layer normalization", sec. 3.1
    and the LSTM equations of its supplement; gate order i, f, g, o as torch's):

    .. math::
        (i, f, g, o) &= \mathrm{LN}(W_{ih} x_t + b_{ih}; g_x) + \mathrm{LN}(W_{hh} h_{t-1}; g_h) + b_{hh} \\
        c_t &= \sigma(f) \odot c_{t-1} + \sigma(i) \odot \tanh(g) \\
        h_t &= \sigma(o) \odot \tanh(\mathrm{LN}(c_t; g_c, s_c))

    Each LN normalises over all 4H gate pre-activations. ``b_hh`` is the gates' bias (it is
    added after the normalisation); ``b_ih`` is an offset inside the input's normalisation.
    """
    h, c = state
    gates = layer_norm(gx, g_x) + layer_norm(_linear(recurrent_input(h, keep), w_hh), g_h)
    if b_hh is not None:
        gates = gates + b_hh
    i, f, g, o = gates.chunk(4, dim=-1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return (torch.sigmoid(o) * torch.tanh(layer_norm(c, g_c, s_c)), c)


def _ln_gru_recur(gx: Tensor, state: State, w_hh: Tensor, b_hh: Optional[Tensor],
                  g_x: Tensor, g_h: Tensor, *, keep: Optional[Tensor] = None) -> State:
    r"""Layer-normalised GRU step (Ba, Kiros & Hinton 2016's normalisation of the input and
    recurrent projections, applied to the GRU of Cho et al. 2014; gate order r, z, n):

    .. math::
        a^x &= \mathrm{LN}(W_{ih} x_t + b_{ih}; g_x), \quad a^h = \mathrm{LN}(W_{hh} h_{t-1}; g_h) + b_{hh} \\
        r_t &= \sigma(a^x_r + a^h_r), \quad z_t = \sigma(a^x_z + a^h_z) \\
        n_t &= \tanh(a^x_n + r_t \odot a^h_n), \quad h_t = (1 - z_t) \odot n_t + z_t \odot h_{t-1}
    """
    (h,) = state
    ah = layer_norm(_linear(recurrent_input(h, keep), w_hh), g_h)
    return (gru_combine(layer_norm(gx, g_x), ah if b_hh is None else ah + b_hh, h),)


def _peephole_recur(gx: Tensor, state: State, w_hh: Tensor, b_hh: Optional[Tensor], w_ch: Tensor, *,
                    keep: Optional[Tensor] = None) -> State:
    r"""Peephole LSTM step (Gers & Schmidhuber 2000, "Recurrent nets that time and count";
    Gers, Schraudolph & Schmidhuber 2002, eqs. 1-5): the gates also read the cell state,
    through diagonal peephole weights :math:`p = (p_i, p_f, p_o)` (``w_ch`` (3H,)):

    .. math::
        i_t &= \sigma(W_{ii} x_t + W_{hi} h_{t-1} + p_i \odot c_{t-1} + b_i) \\
        f_t &= \sigma(W_{if} x_t + W_{hf} h_{t-1} + p_f \odot c_{t-1} + b_f) \\
        c_t &= f_t \odot c_{t-1} + i_t \odot \tanh(W_{ig} x_t + W_{hg} h_{t-1} + b_g) \\
        o_t &= \sigma(W_{io} x_t + W_{ho} h_{t-1} + p_o \odot c_t + b_o), \quad h_t = o_t \odot \tanh(c_t)
    """
    h, c = state
    gates = _add_linear(gx, recurrent_input(h, keep), w_hh, b_hh)  # (N, 4H)
    i, f, g, o = gates.chunk(4, dim=-1)
    p_i, p_f, p_o = w_ch.chunk(3, dim=-1)
    c = torch.sigmoid(f + p_f * c) * c + torch.sigmoid(i + p_i * c) * torch.tanh(g)
    return (torch.sigmoid(o + p_o * c) * torch.tanh(c), c)


CELLS["ln_lstm"] = Cell("ln_lstm", 4, 2, _ln_lstm_recur, None, False,
                        extras=(Extra("ln_ih", _gains(4), "one"), Extra("ln_hh", _gains(4), "one"),
                                Extra("ln_c", _gains(1), "one"), Extra("ln_c_shift", _gains(1), "zero")),
                        forget_gate=1, forget_bias_in="bias_hh")
CELLS["ln_gru"] = Cell("ln_gru", 3, 1, _ln_gru_recur, None, False,
                       extras=(Extra("ln_ih", _gains(3), "one"), Extra("ln_hh", _gains(3), "one")))
CELLS["peephole"] = Cell("peephole", 4, 2, _peephole_recur, None, True,
                         extras=(Extra("weight_ch", _gains(3), "uniform"),), forget_gate=1)


def indrnn_cell(bound: float = 1.0, *, smooth: bool = False) -> Cell:
    r"""Independently recurrent neural network (Li, Li, Cook, Zhu & Gao 2018, "Independently
    recurrent neural network (IndRNN)", eq. 2): every unit feeds back only to itself,

    .. math::  h_t = \mathrm{ReLU}(W_{ih} x_t + b_{ih} + u \odot h_{t-1} + b_{hh}),
               \quad |u_n| \le \gamma

    with ``u = W_hh`` a vector (H,). The constraint (sec. 3.1: :math:`|u_n| \le
    \sqrt[T]{\gamma}` keeps gradients over T steps within a factor γ) is ``bound``; it is
    applied as a clamp in the step, so every training family sees a constrained network, and
    gradient updates project ``u`` back into it (:meth:`Recurrent.constrain_`), so a weight at
    the bound keeps its gradient. ``smooth``: tanh and no clamp (the twin patterns are probed on)."""
    b = float(bound)
    if not (b > 0 and math.isfinite(b)):
        raise ValueError(f"IndRNN's recurrent bound must be a positive number, got {bound!r}")

    def recur(gx: Tensor, state: State, w_hh: Tensor, b_hh: Optional[Tensor], *,
              keep: Optional[Tensor] = None) -> State:
        (h,) = state
        pre = gx + (w_hh if smooth else w_hh.clamp(-b, b)) * recurrent_input(h, keep)
        pre = pre if b_hh is None else pre + b_hh
        return (torch.tanh(pre) if smooth else torch.relu(pre),)

    return Cell("indrnn", 1, 1, recur, None, True, diagonal=True, bound=b,
                smooth=None if smooth else indrnn_cell(b, smooth=True))


CELLS["indrnn"] = indrnn_cell(1.0)

CT_METHODS = ("euler", "rk4")


def ctrnn_cell(method: str = "euler", dt: float = 1.0, *, timed: bool = False, smooth: bool = False) -> Cell:
    r"""Continuous-time RNN (Funahashi & Nakamura 1993; Beer 1995), with learnable time
    constants :math:`\tau = e^{\log\tau}` (``log_tau`` (H,), initialised log-uniform in
    [1, 10] steps):

    .. math::  \tau \odot \frac{dh}{dt} = -h + \tanh(W_{hh} h + W_{ih} x + b_{ih} + b_{hh})

    integrated over each step of length Δt with the input held, by forward Euler
    (:math:`h + r \odot (\phi(h) - h)`, :math:`r = \Delta t / \tau`) or classical Runge-Kutta
    4 (:math:`k_1 = r \odot (\phi(h) - h)`, :math:`k_2` at :math:`h + k_1/2`, :math:`k_3` at
    :math:`h + k_2/2`, :math:`k_4` at :math:`h + k_3`; :math:`h + (k_1 + 2k_2 + 2k_3 + k_4)/6`).
    Δt is ``dt`` for evenly sampled data; a ``timed`` cell reads each step's Δt from its
    input's last feature (the data's time column, differenced; also an ordinary input of W_ih).

    The ratio r is capped at 1: a time constant shorter than the sampling step cannot be
    resolved from the samples, and the cap keeps an Euler step a convex combination of h and
    φ(h) (so |h| <= 1) and both methods inside their stability regions. Updates project
    ``log_tau`` to at least log(dt) (the cap's edge; not for a timed cell, whose Δt varies).
    ``smooth``: without the cap (the twin sparsity patterns are probed on)."""
    if method not in CT_METHODS:
        raise ValueError(f"method must be one of {CT_METHODS}, got {method!r}")
    step = float(dt)
    if not (step > 0 and math.isfinite(step)):
        raise ValueError(f"dt must be a positive number, got {dt!r}")

    def recur(gx: Tensor, state: State, w_hh: Tensor, b_hh: Optional[Tensor], log_tau: Tensor, *,
              keep: Optional[Tensor] = None, dt: Optional[Tensor] = None) -> State:
        (h,) = state
        ratio = (step if dt is None else dt) * torch.exp(-log_tau)  # Δt/τ
        ratio = ratio if smooth else ratio.clamp(max=1.0)

        def k(v: Tensor) -> Tensor:  # Δt f(v)
            return ratio * (torch.tanh(_add_linear(gx, recurrent_input(v, keep), w_hh, b_hh)) - v)

        if method == "euler":
            return (h + k(h),)
        k1 = k(h)
        k2 = k(h + 0.5 * k1)
        k3 = k(h + 0.5 * k2)
        k4 = k(h + k3)
        return (h + (k1 + 2.0 * k2 + 2.0 * k3 + k4) / 6.0,)

    low = None if timed else math.log(step)
    return Cell("ctrnn", 1, 1, recur, None, True, reads_dt=timed,
                extras=(Extra("log_tau", _gains(1), "log_uniform:1:10", low=low),),
                smooth=None if smooth else ctrnn_cell(method, dt, timed=timed, smooth=True))


CELLS["ctrnn"] = ctrnn_cell()

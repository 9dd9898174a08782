r"""``Recurrent``: a drop-in for ``torch.nn.RNN``, ``torch.nn.LSTM`` and ``torch.nn.GRU``.

Same constructor arguments, call signature, return values, ``state_dict`` keys and
tensor layouts as torch's modules, so a state_dict saved from ``torch.nn.LSTM`` loads
and gives the same outputs and gradients. Two execution paths compute the same function:

- **fused** (default when nothing needs the step path): torch's fused kernel
  (``torch._VF.rnn_tanh/rnn_relu/lstm/gru``, what torch's own modules call);
- **step**: a Python loop over time that calls the cell's single step
  (:mod:`rnntrain.core.cells`). This is the path algorithms that need per-step access
  use (real-time recurrent learning, analysis, generation), and the one that works
  under ``torch.func`` transforms (vmap, jvp).

Shape symbols (as in torch): ``N`` batch, ``L`` sequence length, ``D`` = 2 if
bidirectional else 1, ``H_in`` input size, ``H`` hidden size::

    input   (L, N, H_in)  or (N, L, H_in) with batch_first, or (L, H_in) unbatched
    h_0     (D*num_layers, N, H)            (LSTM: a tuple (h_0, c_0))
    output  (L, N, D*H)   or (N, L, D*H) with batch_first
    h_n     (D*num_layers, N, H)            (LSTM: a tuple (h_n, c_n))

The step path is equivalent to this loop (one layer, one direction)::

    gx = F.linear(x, W_ih, b_ih)                 # (L, N, G*H), all steps at once
    for t in range(L):
        state = cell.recur(gx[t], state, W_hh, b_hh)
        output[t] = state[0]
"""
from __future__ import annotations

import math
from typing import List, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .cells import Cell, State, get_cell

HiddenArg = Union[Tensor, Tuple[Tensor, Tensor], None]

PATHS = ("auto", "fused", "step")


def detach_state(state):
    """The state with its history cut: a tensor, a tuple of tensors (LSTM), or None."""
    if state is None:
        return None
    if isinstance(state, (tuple, list)):
        return type(state)(s.detach() for s in state)
    return state.detach()


def unroll_layer(cell: Cell, x: Tensor, state: State, w_ih: Tensor, w_hh: Tensor,
                 b_ih: Optional[Tensor], b_hh: Optional[Tensor],
                 reverse: bool = False) -> Tuple[Tensor, State]:
    """Run one layer in one direction over time by the cell's single step.

    x (L, N, H_in), state tuple of (N, H) -> (outputs (L, N, H), final state).
    """
    gx = F.linear(x, w_ih, b_ih)  # (L, N, G*H): the input part of every step in one product
    steps = gx.unbind(0)  # unbind, not gx[t]: indexing in the loop makes backward ~10x slower
    if reverse:
        steps = steps[::-1]
    outs: List[Tensor] = []
    for g in steps:
        state = cell.recur(g, state, w_hh, b_hh)
        outs.append(state[0])
    if reverse:
        outs.reverse()
    return torch.stack(outs), state


def _under_transform(tensors) -> bool:
    """True inside torch.func transforms (vmap, jvp, grad) of any of ``tensors`` (input,
    state, weights): the fused kernel has no batching or forward-mode rules, while the
    step path, made of ordinary ops, works under all of them."""
    is_wrapped = torch._C._functorch.is_functorch_wrapped_tensor
    return any(t is not None and is_wrapped(t) for t in tensors)


class Recurrent(nn.Module):
    """Multi-layer Elman (tanh/ReLU), LSTM or GRU network; see the module docstring.

    Args:
        mode: "RNN", "LSTM" or "GRU" (case-insensitive; "rnn_tanh"/"rnn_relu" also accepted),
            or a :class:`~rnntrain.core.cells.Cell` (e.g. ``reservoir_cell(leak_rate)``).
        input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
        nonlinearity: exactly as for ``torch.nn.RNN`` (``nonlinearity`` applies to "RNN").
        path: "auto" (fused kernel unless a step path is needed), "fused" or "step".
        device, dtype: factory arguments for the parameters.
    """

    def __init__(self, mode: str, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, nonlinearity: str = "tanh", *,
                 path: str = "auto", device=None, dtype=None) -> None:
        super().__init__()
        for name, value in (("input_size", input_size), ("hidden_size", hidden_size),
                            ("num_layers", num_layers)):
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not isinstance(dropout, (int, float)) or isinstance(dropout, bool) or not 0 <= dropout <= 1:
            raise ValueError(f"dropout should be a number in range [0, 1] representing the "
                             f"probability of an element being zeroed, got {dropout!r}")
        if path not in PATHS:
            raise ValueError(f"path must be one of {PATHS}, got {path!r}")
        self.cell: Cell = get_cell(mode, nonlinearity)
        self.mode = {"rnn_tanh": "RNN", "rnn_relu": "RNN", "lstm": "LSTM",
                     "gru": "GRU"}.get(self.cell.name, self.cell.name.upper())  # others: "RESERVOIR", ...
        self.nonlinearity = "relu" if self.cell.name == "rnn_relu" else "tanh"
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bias = bias
        self.batch_first = batch_first
        self.dropout = float(dropout)
        self.bidirectional = bidirectional
        self.path = path
        D = 2 if bidirectional else 1
        G = self.cell.gates
        factory = {"device": device, "dtype": dtype}
        self._weight_names: List[List[str]] = []  # per (layer, direction), torch's flat order
        for layer in range(num_layers):
            layer_in = input_size if layer == 0 else hidden_size * D
            for direction in range(D):
                sfx = f"_l{layer}" + ("_reverse" if direction == 1 else "")
                names = [f"weight_ih{sfx}", f"weight_hh{sfx}"]
                setattr(self, names[0], nn.Parameter(torch.empty(G * hidden_size, layer_in, **factory)))
                setattr(self, names[1], nn.Parameter(torch.empty(G * hidden_size, hidden_size, **factory)))
                if bias:
                    names += [f"bias_ih{sfx}", f"bias_hh{sfx}"]
                    setattr(self, names[2], nn.Parameter(torch.empty(G * hidden_size, **factory)))
                    setattr(self, names[3], nn.Parameter(torch.empty(G * hidden_size, **factory)))
                self._weight_names.append(names)
        self.reset_parameters()

    # -- parameters -------------------------------------------------------------------
    def reset_parameters(self) -> None:
        """torch's default: every weight and bias from U(-1/sqrt(H), 1/sqrt(H))."""
        stdv = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -stdv, stdv)

    @property
    def state_arity(self) -> int:
        return self.cell.state_arity

    def layer_weights(self, layer: int, direction: int = 0) -> Tuple[Tensor, Tensor, Optional[Tensor], Optional[Tensor]]:
        """(W_ih, W_hh, b_ih, b_hh) of one layer and direction (biases None without bias)."""
        names = self._weight_names[layer * (2 if self.bidirectional else 1) + direction]
        ws = [getattr(self, n) for n in names]
        return (ws[0], ws[1], ws[2], ws[3]) if self.bias else (ws[0], ws[1], None, None)

    def _flat_weights(self) -> List[Tensor]:
        return [getattr(self, n) for names in self._weight_names for n in names]

    def extra_repr(self) -> str:
        s = f"{self.mode}, {self.input_size}, {self.hidden_size}"
        if self.mode == "RNN" and self.nonlinearity != "tanh":
            s += f", nonlinearity={self.nonlinearity!r}"
        for k, default in (("num_layers", 1), ("bias", True), ("batch_first", False),
                           ("dropout", 0.0), ("bidirectional", False), ("path", "auto")):
            if getattr(self, k) != default:
                s += f", {k}={getattr(self, k)!r}"
        return s

    # -- state --------------------------------------------------------------------------
    def initial_state(self, batch: int, *, device=None, dtype=None) -> HiddenArg:
        """Zero state in torch's layout: (D*num_layers, N, H), a tuple for LSTM."""
        p = self.weight_ih_l0
        D = 2 if self.bidirectional else 1
        z = torch.zeros(D * self.num_layers, batch, self.hidden_size,
                        device=device or p.device, dtype=dtype or p.dtype)
        return (z, z.clone()) if self.state_arity == 2 else z

    def flat_state(self, hx: HiddenArg) -> Tensor:
        """The state as one vector per sequence: (N, S), S = arity * D*num_layers * H, ordered
        [h of every layer, then c of every layer] (what Jacobians over the state act on)."""
        parts = hx if isinstance(hx, (tuple, list)) else (hx,)
        return torch.stack(tuple(parts)).permute(2, 0, 1, 3).reshape(parts[0].shape[1], -1)

    def unflat_state(self, s: Tensor) -> HiddenArg:
        """(N, S) -> torch's state layout, (D*num_layers, N, H) or a tuple (h, c)."""
        D = 2 if self.bidirectional else 1
        parts = s.reshape(s.shape[0], self.state_arity, D * self.num_layers, self.hidden_size)
        parts = parts.permute(1, 2, 0, 3)
        return (parts[0], parts[1]) if self.state_arity == 2 else parts[0]

    # -- forward ------------------------------------------------------------------------
    def forward(self, input: Tensor, hx: HiddenArg = None, *, path: Optional[str] = None):
        """Returns ``(output, h_n)``, or ``(output, (h_n, c_n))`` for LSTM; shapes above."""
        if isinstance(input, nn.utils.rnn.PackedSequence):
            raise TypeError("rnntrain.Recurrent does not take PackedSequence input: pad the "
                            "batch to one length (torch.nn.utils.rnn.pad_packed_sequence).")
        path = path or self.path
        if path not in PATHS:
            raise ValueError(f"path must be one of {PATHS}, got {path!r}")
        if input.dim() not in (2, 3):
            raise ValueError(f"Recurrent: expected input to be 2D or 3D, got {input.dim()}D instead")
        if input.size(-1) != self.input_size:
            raise RuntimeError(f"input.size(-1) must be equal to input_size. "
                               f"Expected {self.input_size}, got {input.size(-1)}")
        if isinstance(hx, list):
            hx = tuple(hx)
        unbatched = input.dim() == 2
        batch_dim = 0 if self.batch_first else 1
        if unbatched:
            input = input.unsqueeze(batch_dim)
            if hx is not None:
                hx = tuple(h.unsqueeze(1) for h in hx) if isinstance(hx, tuple) else hx.unsqueeze(1)
        batch = input.size(batch_dim)
        if hx is None:
            hx = self.initial_state(batch, device=input.device, dtype=input.dtype)
        elif (self.state_arity == 2) != isinstance(hx, tuple):
            raise TypeError("LSTM expects hx as a tuple (h_0, c_0)" if self.state_arity == 2
                            else f"{self.mode} expects hx as one tensor, not a tuple")
        self._check_hidden(hx, batch, unbatched)
        if path == "auto":
            states = hx if isinstance(hx, tuple) else (hx,)
            path = "step" if _under_transform([input, *states, *self._flat_weights()]) else "fused"
        if path == "fused" and self.cell.fused is not None:  # cells without a kernel: step path
            output, hn = self._forward_fused(input, hx)
        else:
            output, hn = self._forward_step(input, hx)
        if unbatched:
            output = output.squeeze(batch_dim)
            hn = tuple(h.squeeze(1) for h in hn) if isinstance(hn, tuple) else hn.squeeze(1)
        return output, hn

    def _check_hidden(self, hx: HiddenArg, batch: int, unbatched: bool) -> None:
        D = 2 if self.bidirectional else 1
        expected = (D * self.num_layers, batch, self.hidden_size)
        for h in (hx if isinstance(hx, tuple) else (hx,)):
            if h.dim() != 3 or tuple(h.shape) != expected:
                shape = tuple(h.shape[:1]) + tuple(h.shape[2:]) if unbatched and h.dim() == 3 else tuple(h.shape)
                want = (expected[0], expected[2]) if unbatched else expected
                raise RuntimeError(f"Expected hidden size {want}, got {shape}")

    def _forward_fused(self, input: Tensor, hx: HiddenArg):
        if self.state_arity == 2:
            hx = tuple(hx)
        result = self.cell.fused(input, hx, self._flat_weights(), self.bias, self.num_layers,
                                 self.dropout, self.training, self.bidirectional, self.batch_first)
        if self.state_arity == 2:
            return result[0], (result[1], result[2])
        return result[0], result[1]

    def _forward_step(self, input: Tensor, hx: HiddenArg):
        x = input.transpose(0, 1) if self.batch_first else input  # (L, N, H_in)
        states = hx if self.state_arity == 2 else (hx,)  # each (D*layers, N, H)
        D = 2 if self.bidirectional else 1
        finals: List[List[Tensor]] = [[] for _ in range(self.state_arity)]
        for layer in range(self.num_layers):
            if layer > 0 and self.dropout > 0:
                x = F.dropout(x, self.dropout, self.training)
            outs = []
            for direction in range(D):
                k = layer * D + direction
                state0 = tuple(s[k] for s in states)
                out, state = unroll_layer(self.cell, x, state0, *self.layer_weights(layer, direction),
                                          reverse=direction == 1)
                outs.append(out)
                for i, s in enumerate(state):
                    finals[i].append(s)
            x = outs[0] if D == 1 else torch.cat(outs, dim=-1)  # (L, N, D*H)
        output = x.transpose(0, 1) if self.batch_first else x
        hn = tuple(torch.stack(f) for f in finals)
        return output, (hn if self.state_arity == 2 else hn[0])

    def step(self, x: Tensor, hx: HiddenArg) -> HiddenArg:
        """One time step through every layer (unidirectional only): x (N, H_in), hx as h_0.

        Dropout between layers is not applied (it belongs to training on whole
        sequences). Returns the new state in the same layout as ``hx``.
        """
        if self.bidirectional:
            raise ValueError("a single step is undefined for a bidirectional network "
                             "(the backward direction needs the whole sequence)")
        states = hx if self.state_arity == 2 else (hx,)
        finals: List[List[Tensor]] = [[] for _ in range(self.state_arity)]
        for layer in range(self.num_layers):
            state = self.cell.step(x, tuple(s[layer] for s in states), *self.layer_weights(layer))
            for i, s in enumerate(state):
                finals[i].append(s)
            x = state[0]
        hn = tuple(torch.stack(f) for f in finals)
        return hn if self.state_arity == 2 else hn[0]

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

**Sequences of different lengths**, as torch takes them: a ``PackedSequence`` input (the
output is packed too), or a padded input with ``lengths`` (N,) (the output is padded,
zeros after each sequence's end, exactly what ``pad_packed_sequence`` gives). Each
sequence's final state is the state after its own last step; the backward direction of
a bidirectional layer starts at each sequence's last step. The step path masks: a
sequence's state is frozen once ``t >= length``. The fused path runs torch's kernel per
layer and direction on the padded batch, the backward direction on each sequence reversed
within its length (so padding only ever trails), and reads each final state at the
sequence's last step; for an LSTM, whose cell state is not among the outputs, it packs
when the final state is asked for (``final_state=True``, the default) — torch's packed
LSTM kernel is 2.5-4x slower on CPU than its padded one, so callers that only read the
outputs (classification, tagging, CTC) pass ``final_state=False``. All paths give the
same numbers (tests/test_ragged.py).
"""
from __future__ import annotations

import math
from typing import Dict, List, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from .cells import Cell, get_cell
from .lengths import LengthsArg, as_lengths, last_steps, reversal_index, reverse_within, step_mask
from .unroll import _under_transform, unroll_layer  # noqa: F401  (unroll_layer re-exported)

HiddenArg = Union[Tensor, Tuple[Tensor, Tensor], None]
PATHS = ("auto", "fused", "step")


def detach_state(state):
    """The state with its history cut: a tensor, a tuple of tensors (LSTM), or None."""
    if isinstance(state, (tuple, list)):
        return type(state)(s.detach() for s in state)
    return None if state is None else state.detach()


def _as_tuple(hx) -> Tuple[Tensor, ...]:
    return hx if isinstance(hx, tuple) else (hx,)


def _from_tuple(parts: Tuple[Tensor, ...]):
    return parts if len(parts) == 2 else parts[0]


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

    def weight_names(self, layer: int, direction: int = 0) -> List[str]:
        """Parameter names of one layer and direction, torch's order (W_ih, W_hh[, b_ih, b_hh])."""
        return self._weight_names[layer * (2 if self.bidirectional else 1) + direction]

    def layer_weights(self, layer: int, direction: int = 0) -> Tuple[Tensor, Tensor, Optional[Tensor], Optional[Tensor]]:
        """(W_ih, W_hh, b_ih, b_hh) of one layer and direction (biases None without bias)."""
        ws = [getattr(self, n) for n in self.weight_names(layer, direction)]
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
    def forward(self, input, hx: HiddenArg = None, *, lengths: LengthsArg = None,
                path: Optional[str] = None, final_state: bool = True):
        """Returns ``(output, h_n)``, or ``(output, (h_n, c_n))`` for LSTM; shapes above.

        ``input`` a tensor, or a ``PackedSequence`` (then the output is packed, as torch's).
        ``lengths`` (N,) valid steps of each sequence of a padded input (None: all L).
        ``final_state=False``: the caller does not read the final state (returned as None
        when computing it would cost a slower kernel; see the module docstring).
        """
        path = path or self.path
        if path not in PATHS:
            raise ValueError(f"path must be one of {PATHS}, got {path!r}")
        if isinstance(input, PackedSequence):
            if lengths is not None:
                raise ValueError("a PackedSequence carries its own lengths: drop lengths=")
            return self._forward_packed_input(input, hx, path)
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
            if lengths is not None:
                raise ValueError("lengths are for a batch of sequences; an unbatched input is one sequence")
            input = input.unsqueeze(batch_dim)
            if hx is not None:
                hx = tuple(h.unsqueeze(1) for h in hx) if isinstance(hx, tuple) else hx.unsqueeze(1)
        batch = input.size(batch_dim)
        hx = self._prepare_hidden(hx, batch, unbatched, input)
        x = input.transpose(0, 1) if self.batch_first else input  # (L, N, H_in)
        n = as_lengths(lengths, batch, x.shape[0])
        path = self._resolve(path, x, hx)
        if path == "fused" and n is None:  # the kernel reads batch-first input as it is
            output, hn = self._forward_fused(input, hx)
        else:
            if path == "step":
                output, hn = self._forward_step(x, hx, n)
            elif self.state_arity == 2 and final_state:  # c_n is not among the outputs: pack
                output, hn = self._forward_fused_packed(x, hx, n)
            else:
                output, hn = self._forward_fused_ragged(x, hx, n)
            output = output.transpose(0, 1) if self.batch_first else output
        if unbatched:
            output = output.squeeze(batch_dim)
            hn = tuple(h.squeeze(1) for h in hn) if isinstance(hn, tuple) else hn.squeeze(1)
        return output, hn

    def _prepare_hidden(self, hx: HiddenArg, batch: int, unbatched: bool, like: Tensor) -> HiddenArg:
        if hx is None:
            return self.initial_state(batch, device=like.device, dtype=like.dtype)
        if (self.state_arity == 2) != isinstance(hx, tuple):
            raise TypeError("LSTM expects hx as a tuple (h_0, c_0)" if self.state_arity == 2
                            else f"{self.mode} expects hx as one tensor, not a tuple")
        self._check_hidden(hx, batch, unbatched)
        return hx

    def _resolve(self, path: str, x: Tensor, hx: HiddenArg) -> str:
        """"fused" or "step": auto takes the kernel unless a torch.func transform needs the
        step path; cells without a kernel always step."""
        if self.cell.fused is None:
            return "step"
        if path == "auto":
            states = hx if isinstance(hx, tuple) else (hx,)
            return "step" if _under_transform([x, *states, *self._flat_weights()]) else "fused"
        return path

    def _check_hidden(self, hx: HiddenArg, batch: int, unbatched: bool) -> None:
        D = 2 if self.bidirectional else 1
        expected = (D * self.num_layers, batch, self.hidden_size)
        for h in (hx if isinstance(hx, tuple) else (hx,)):
            if h.dim() != 3 or tuple(h.shape) != expected:
                shape = tuple(h.shape[:1]) + tuple(h.shape[2:]) if unbatched and h.dim() == 3 else tuple(h.shape)
                want = (expected[0], expected[2]) if unbatched else expected
                raise RuntimeError(f"Expected hidden size {want}, got {shape}")

    def _pack_state(self, result) -> Tuple[Tensor, HiddenArg]:
        if self.state_arity == 2:
            return result[0], (result[1], result[2])
        return result[0], result[1]

    def _forward_fused(self, input: Tensor, hx: HiddenArg):
        """The input in the module's layout, every sequence full length: one kernel call."""
        result = self.cell.fused(input, hx, self._flat_weights(), self.bias, self.num_layers,
                                 self.dropout, self.training, self.bidirectional, self.batch_first)
        return self._pack_state(result)

    def _run_packed(self, packed: PackedSequence, hx: HiddenArg) -> Tuple[PackedSequence, HiddenArg]:
        """torch's packed kernel; hx and h_n in the caller's batch order (torch's contract)."""
        def order(state, idx):
            return state if idx is None else _from_tuple(tuple(h.index_select(1, idx.to(h.device))
                                                               for h in _as_tuple(state)))
        result = self.cell.fused(packed.data, packed.batch_sizes, order(hx, packed.sorted_indices),
                                 self._flat_weights(), self.bias, self.num_layers, self.dropout,
                                 self.training, self.bidirectional)
        data, hn = self._pack_state(result)
        return packed._replace(data=data), order(hn, packed.unsorted_indices)

    def _forward_fused_packed(self, x: Tensor, hx: HiddenArg, n: Tensor):
        """Padded x (L, N, H_in) with lengths n through the packed kernel; sequences of
        length 0 (which torch cannot pack) keep h_0 and output zeros."""
        live = n > 0
        if not bool(live.all()):
            idx = live.nonzero()[:, 0]
            sub = tuple(h[:, idx.to(h.device)] for h in _as_tuple(hx))
            out_l, hn_l = self._forward_fused_packed(x[:, idx.to(x.device)], _from_tuple(sub), n[idx])
            out = x.new_zeros(x.shape[0], x.shape[1], out_l.shape[-1])
            out[:, idx.to(x.device)] = out_l
            hn = tuple(h.clone() for h in _as_tuple(hx))
            for h, h_l in zip(hn, _as_tuple(hn_l)):
                h[:, idx.to(h.device)] = h_l
            return out, _from_tuple(hn)
        packed, hn = self._run_packed(pack_padded_sequence(x, n, enforce_sorted=False), hx)
        return pad_packed_sequence(packed, total_length=x.shape[0])[0], hn

    def _layers(self, x: Tensor, hx: HiddenArg, run) -> Tuple[Tensor, HiddenArg]:
        """x (L, N, H_in) through every layer and direction, one layer and direction at a
        time: ``run(x, state0, layer, direction) -> (out (L, N, H), final state tuple)``.
        Dropout between layers as torch's kernel applies it. A run that returns only h
        (the ragged kernel for an LSTM) gives no final state (None)."""
        states = _as_tuple(hx)  # each (D*layers, N, H)
        D = 2 if self.bidirectional else 1
        finals: List[List[Tensor]] = [[] for _ in range(self.state_arity)]
        for layer in range(self.num_layers):
            if layer > 0 and self.dropout > 0:
                x = F.dropout(x, self.dropout, self.training)
            outs = []
            for direction in range(D):
                k = layer * D + direction
                out, state = run(x, tuple(s[k] for s in states), layer, direction)
                outs.append(out)
                for i, s in enumerate(state):
                    finals[i].append(s)
            x = outs[0] if D == 1 else torch.cat(outs, dim=-1)  # (L, N, D*H)
        if not all(finals):
            return x, None
        return x, _from_tuple(tuple(torch.stack(f) for f in finals))

    def _forward_fused_ragged(self, x: Tensor, hx: HiddenArg, n: Tensor):
        """Padded x (L, N, H_in) with lengths n, torch's padded kernel one layer and direction
        at a time: the backward direction reads each sequence reversed within its length,
        so padding only ever trails and never reaches a valid step; final h_n read at each
        sequence's last step. LSTM c_n is not available here (None unless packed)."""
        mask = step_mask(n, x.shape[0], x.device)  # (L, N, 1)
        rev = reversal_index(n, x.shape[0], x.device) if self.bidirectional else None

        def run(x, state0, layer, direction):
            xin = reverse_within(x, n, rev) if direction == 1 else x
            weights = list(self.layer_weights(layer, direction)[:4 if self.bias else 2])
            h0 = _from_tuple(tuple(s[None] for s in state0))  # (1, N, H) each
            out = self.cell.fused(xin, h0, weights, self.bias, 1, 0.0, self.training, False, False)[0]
            last = last_steps(out, n, state0[0])  # (N, H)
            out = out * mask  # zeros after each sequence's end, as pad_packed_sequence gives
            return (reverse_within(out, n, rev) if direction == 1 else out), (last,)

        return self._layers(x, hx, run)

    def _forward_step(self, x: Tensor, hx: HiddenArg, n: Optional[Tensor] = None):
        """x (L, N, H_in) time-major through the cells' own step, masked with lengths n."""
        mask = None if n is None else step_mask(n, x.shape[0], x.device)

        def run(x, state0, layer, direction):
            return unroll_layer(self.cell, x, state0, *self.layer_weights(layer, direction),
                                reverse=direction == 1, mask=mask)

        return self._layers(x, hx, run)

    def _forward_packed_input(self, packed: PackedSequence, hx: HiddenArg, path: str):
        """torch's PackedSequence contract: hx and h_n in the caller's batch order, the
        output packed like the input (same batch_sizes and sorted/unsorted indices)."""
        batch = int(packed.batch_sizes[0])
        if isinstance(hx, list):
            hx = tuple(hx)
        hx = self._prepare_hidden(hx, batch, False, packed.data)
        path = self._resolve(path, packed.data, hx)
        if path == "fused":
            return self._run_packed(packed, hx)
        x, n = pad_packed_sequence(packed)  # (L, N, H_in) in the caller's order, lengths (N,)
        out, hn = self._forward_step(x, hx, as_lengths(n, batch, x.shape[0]))
        order = packed.sorted_indices if packed.sorted_indices is not None else torch.arange(batch)
        repacked = pack_padded_sequence(out.index_select(1, order.to(out.device)), n[order.cpu()],
                                        enforce_sorted=True)
        return packed._replace(data=repacked.data), hn

    # -- P networks at once -----------------------------------------------------------------
    def population_unroll(self, weights: Dict[str, Tensor], seq: Tensor,
                          lengths: Optional[Tensor] = None, *, final_only: bool = False) -> Tensor:
        """P networks of this shape at once (see :func:`.population.population_unroll`)."""
        from .population import population_unroll
        return population_unroll(self, weights, seq, lengths, final_only=final_only)

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

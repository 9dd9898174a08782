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

from .cells import Cell, State, get_cell

HiddenArg = Union[Tensor, Tuple[Tensor, Tensor], None]
LengthsArg = Union[Tensor, List[int], Tuple[int, ...], None]

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
                 reverse: bool = False, mask: Optional[Tensor] = None) -> Tuple[Tensor, State]:
    """Run one layer in one direction over time by the cell's single step.

    x (L, N, H_in), state tuple of (N, H) -> (outputs (L, N, H), final state).
    ``mask`` (L, N, 1) bool, True at valid steps: a sequence's state is frozen and its output
    is zero at the steps after its end (so reversed, the state waits at h_0 until the
    sequence's last step, where the backward direction starts).
    """
    gx = F.linear(x, w_ih, b_ih)  # (L, N, G*H): the input part of every step in one product
    steps = gx.unbind(0)  # unbind, not gx[t]: indexing in the loop makes backward ~10x slower
    masks = mask.unbind(0) if mask is not None else None
    order = range(len(steps) - 1, -1, -1) if reverse else range(len(steps))
    outs: List[Tensor] = [None] * len(steps)  # type: ignore[list-item]
    for t in order:
        new = cell.recur(steps[t], state, w_hh, b_hh)
        if masks is None:
            state = new
            outs[t] = new[0]
        else:
            m = masks[t]  # (N, 1)
            state = tuple(torch.where(m, a, b) for a, b in zip(new, state))
            outs[t] = torch.where(m, new[0], torch.zeros_like(new[0]))
    return torch.stack(outs), state


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


def step_mask(lengths: Tensor, steps: int, device) -> Tensor:
    """(L, N, 1) bool, True where step t < the sequence's length (time-major)."""
    return (torch.arange(steps)[:, None] < lengths[None, :]).to(device)[..., None]


def reverse_within(x: Tensor, lengths: Tensor) -> Tensor:
    """Each sequence of a padded (L, N, ...) tensor reversed within its own length, its
    padding left in place: x'[t, n] = x[len_n - 1 - t, n] for t < len_n (an involution)."""
    L, N = x.shape[0], x.shape[1]
    t = torch.arange(L)[:, None]  # (L, 1)
    idx = torch.where(t < lengths[None, :], lengths[None, :] - 1 - t, t)  # (L, N)
    idx = idx.to(x.device).view(L, N, *([1] * (x.dim() - 2))).expand_as(x)
    return x.gather(0, idx)


def last_steps(x: Tensor, lengths: Tensor, fallback: Tensor) -> Tensor:
    """x (L, N, H) read at each sequence's last step -> (N, H); ``fallback`` (N, H) for
    sequences of length 0 (their final state is the initial one)."""
    idx = (lengths - 1).clamp(min=0).to(x.device)  # (N,)
    picked = x[idx, torch.arange(x.shape[1], device=x.device)]  # (N, H)
    empty = (lengths == 0).to(x.device)[:, None]
    return torch.where(empty, fallback, picked) if bool(empty.any()) else picked


def _under_transform(tensors) -> bool:
    """True inside torch.func transforms (vmap, jvp, grad) of any of ``tensors`` (input,
    state, weights): the fused kernel has no batching or forward-mode rules, while the
    step path, made of ordinary ops, works under all of them."""
    is_wrapped = torch._C._functorch.is_functorch_wrapped_tensor
    return any(t is not None and is_wrapped(t) for t in tensors)


# Bytes of one per-step tensor (p, N, G*H) of a block of individuals in population_unroll:
# the step's working set (gx, state, the product, the new state) then stays within a core's L2.
_CACHE_BYTES = 2 ** 19


def _input_part(x_t: Tensor, w_in: Tensor, b_in: Optional[Tensor], out: Optional[Tensor]) -> Tensor:
    """gx_t = x_t W_ih^T + b_ih for p networks: x_t (N, F) shared or (p, N, F), w_in (p, F, G*H),
    b_in (p, 1, G*H) -> (p, N, G*H), one kernel, written into ``out`` when given."""
    p, F_ = w_in.shape[0], w_in.shape[1]
    if F_ == 1 and x_t.dim() == 2 and b_in is not None:  # an outer product: elementwise
        return torch.addcmul(b_in, x_t, w_in, out=out)
    if x_t.dim() == 2:
        x_t = x_t.expand(p, *x_t.shape)
    return torch.bmm(x_t, w_in, out=out) if b_in is None else torch.baddbmm(b_in, x_t, w_in, out=out)


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

    def _fused_packed(self, data: Tensor, batch_sizes: Tensor, hx: HiddenArg):
        """torch's packed kernel on (sum of lengths, H_in) data sorted by decreasing length."""
        result = self.cell.fused(data, batch_sizes, hx, self._flat_weights(), self.bias,
                                 self.num_layers, self.dropout, self.training, self.bidirectional)
        return self._pack_state(result)

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
        packed = pack_padded_sequence(x, n, enforce_sorted=False)
        hx_sorted = _from_tuple(tuple(h.index_select(1, packed.sorted_indices.to(h.device)) for h in _as_tuple(hx)))
        data, hn = self._fused_packed(packed.data, packed.batch_sizes, hx_sorted)
        out, _ = pad_packed_sequence(PackedSequence(data, packed.batch_sizes, packed.sorted_indices,
                                                    packed.unsorted_indices), total_length=x.shape[0])
        unsort = packed.unsorted_indices
        return out, _from_tuple(tuple(h.index_select(1, unsort.to(h.device)) for h in _as_tuple(hn)))

    def _forward_fused_ragged(self, x: Tensor, hx: HiddenArg, n: Tensor):
        """Padded x (L, N, H_in) with lengths n, torch's padded kernel one layer and direction
        at a time: the backward direction reads each sequence reversed within its length,
        so padding only ever trails and never reaches a valid step; final h_n read at each
        sequence's last step. LSTM c_n is not available here (None unless packed)."""
        D = 2 if self.bidirectional else 1
        mask = step_mask(n, x.shape[0], x.device)  # (L, N, 1)
        states = _as_tuple(hx)
        finals: List[Tensor] = []
        for layer in range(self.num_layers):
            if layer > 0 and self.dropout > 0:
                x = F.dropout(x, self.dropout, self.training)
            outs = []
            for direction in range(D):
                k = layer * D + direction
                h0 = tuple(s[k:k + 1] for s in states)  # (1, N, H) each
                xin = reverse_within(x, n) if direction == 1 else x
                out = self.cell.fused(xin, _from_tuple(h0), list(self.layer_weights(layer, direction)[:4 if self.bias else 2]),
                                      self.bias, 1, 0.0, self.training, False, False)[0]  # (L, N, H)
                finals.append(last_steps(out, n, states[0][k]))
                out = out * mask  # zeros after each sequence's end, as pad_packed_sequence gives
                outs.append(reverse_within(out, n) if direction == 1 else out)
            x = outs[0] if D == 1 else torch.cat(outs, dim=-1)  # (L, N, D*H)
        if self.state_arity == 2:
            return x, None
        return x, torch.stack(finals)

    def _forward_step(self, x: Tensor, hx: HiddenArg, n: Optional[Tensor] = None):
        """x (L, N, H_in) time-major through the cells' own step, masked with lengths n."""
        mask = None if n is None else step_mask(n, x.shape[0], x.device)
        states = _as_tuple(hx)  # each (D*layers, N, H)
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
                                          reverse=direction == 1, mask=mask)
                outs.append(out)
                for i, s in enumerate(state):
                    finals[i].append(s)
            x = outs[0] if D == 1 else torch.cat(outs, dim=-1)  # (L, N, D*H)
        hn = tuple(torch.stack(f) for f in finals)
        return x, _from_tuple(hn)

    def _forward_packed_input(self, packed: PackedSequence, hx: HiddenArg, path: str):
        """torch's PackedSequence contract: hx and h_n in the caller's batch order, the
        output packed like the input (same batch_sizes and sorted/unsorted indices)."""
        batch = int(packed.batch_sizes[0])
        if isinstance(hx, list):
            hx = tuple(hx)
        hx = self._prepare_hidden(hx, batch, False, packed.data)
        path = self._resolve(path, packed.data, hx)
        if path == "fused":
            sort = packed.sorted_indices
            hx_s = hx if sort is None else _from_tuple(tuple(h.index_select(1, sort) for h in _as_tuple(hx)))
            data, hn = self._fused_packed(packed.data, packed.batch_sizes, hx_s)
            if packed.unsorted_indices is not None:
                hn = _from_tuple(tuple(h.index_select(1, packed.unsorted_indices) for h in _as_tuple(hn)))
            return PackedSequence(data, packed.batch_sizes, packed.sorted_indices, packed.unsorted_indices), hn
        x, n = pad_packed_sequence(packed)  # (L, N, H_in) in the caller's order, lengths (N,)
        out, hn = self._forward_step(x, hx, as_lengths(n, batch, x.shape[0]))
        order = packed.sorted_indices if packed.sorted_indices is not None else torch.arange(batch)
        repacked = pack_padded_sequence(out.index_select(1, order.to(out.device)), n[order.cpu()],
                                        enforce_sorted=True)
        return PackedSequence(repacked.data, packed.batch_sizes, packed.sorted_indices,
                              packed.unsorted_indices), hn

    # -- P networks at once -----------------------------------------------------------------
    def population_unroll(self, weights: Dict[str, Tensor], seq: Tensor,
                          lengths: Optional[Tensor] = None, *, final_only: bool = False) -> Tensor:
        """P unidirectional networks of this shape, from the zero state, laid out
        population-first: ``weights`` {local name: (P, *shape)}, seq (L, N, F) shared by all
        or (L, P, N, F) -> top-layer outputs (P, N, L, H), or (P, N, 1, H) (each sequence's
        final state) with ``final_only``.

        The time loop calls the cell's own ``recur`` with stacked weights (P, G*H, H) on
        contiguous (P, N, H) states, so every recurrent product is one batched matmul
        (``cells._linear``); it runs over blocks of individuals whose per-step tensors
        (p, N, G*H) stay in a core's cache. With ``lengths`` a sequence's state is frozen
        after its end (the step path's mask)."""
        if self.bidirectional:
            raise ValueError("population_unroll runs forwards only; vmap the module for a bidirectional one")
        P = weights[self._weight_names[0][0]].shape[0]
        N = seq.shape[-2]
        n = as_lengths(lengths, N, seq.shape[0])
        mask = None if n is None else step_mask(n, seq.shape[0], seq.device)  # (L, N, 1)
        block = max(1, _CACHE_BYTES // (N * self.cell.gates * self.hidden_size * seq.element_size()))
        shared = seq.dim() == 3
        outs = [self._population_block(weights, seq if shared else seq[:, i:i + block], mask, i,
                                       min(block, P - i), final_only)
                for i in range(0, P, block)]
        return torch.cat(outs)

    def _population_block(self, weights: Dict[str, Tensor], seq: Tensor, mask: Optional[Tensor],
                          i: int, p: int, final_only: bool) -> Tensor:
        cell = self.cell
        steps = list(seq.unbind(0))  # L x (N, F) or (p, N, F)
        masks = None if mask is None else mask.unbind(0)  # L x (N, 1)
        for layer in range(self.num_layers):
            names = self._weight_names[layer]
            w_ih, w_hh = weights[names[0]][i:i + p], weights[names[1]][i:i + p]
            b_ih = weights[names[2]][i:i + p] if self.bias else None
            b_hh = weights[names[3]][i:i + p] if self.bias else None
            w_in = w_ih.transpose(1, 2).contiguous()  # (p, F, G*H)
            w_hh = w_hh.contiguous()  # (p, G*H, H)
            b_in = None if b_ih is None else b_ih[:, None].contiguous()  # (p, 1, G*H)
            b_hh = None if b_hh is None else b_hh[:, None].contiguous()
            if cell.bias_in_gx and b_hh is not None:  # b_hh only meets gx + b_hh: add it once
                b_in, b_hh = (b_hh if b_in is None else b_in + b_hh), None
            state = tuple(torch.zeros(p, steps[0].shape[-2], self.hidden_size, dtype=w_hh.dtype,
                                      device=w_hh.device) for _ in range(self.state_arity))
            outs, last = [], final_only and layer == self.num_layers - 1
            gx = None  # gx_t's storage, reused: recur reads gx and never keeps it
            for t, x_t in enumerate(steps):
                gx = _input_part(x_t, w_in, b_in, gx)  # (p, N, G*H)
                new = cell.recur(gx, state, w_hh, b_hh)
                if masks is None:
                    state = new
                    out = new[0]
                else:
                    state = tuple(torch.where(masks[t], a, b) for a, b in zip(new, state))
                    out = torch.where(masks[t], new[0], torch.zeros_like(new[0]))
                if not last:
                    outs.append(out)
            steps = [state[0]] if last else outs
        return torch.stack(steps, 2)  # (p, N, L or 1, H)

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

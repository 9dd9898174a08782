"""``Recurrent``'s fused paths: torch's kernels on padded, ragged and packed batches.

Each takes the module and the forward's effective weights (per layer and direction, after
weight-drop; ``Recurrent.effective_weights``) and computes what the step path computes
(tests/test_ragged.py, tests/test_core_parity.py).
"""
from __future__ import annotations

from typing import List, Tuple

from torch import Tensor
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from .lengths import last_steps, reversal_index, reverse_within, step_mask


def as_tuple(hx) -> Tuple[Tensor, ...]:
    return hx if isinstance(hx, tuple) else (hx,)


def from_tuple(parts: Tuple[Tensor, ...]):
    return parts if len(parts) == 2 else parts[0]


def kernel_weights(layer_weights) -> List[Tensor]:
    """One layer and direction's weights in the order torch's kernel reads them (W_ih, W_hh,
    [b_ih, b_hh], [W_hr]): the cell's slots without the absent biases."""
    return [w for w in layer_weights if w is not None]


def flat_weights(weights) -> List[Tensor]:
    return [w for lw in weights for w in kernel_weights(lw)]


def unpack_state(rnn, result):
    """A kernel's (output, h_n[, c_n]) -> (output, state in torch's layout)."""
    if rnn.state_arity == 2:
        return result[0], (result[1], result[2])
    return result[0], result[1]


def forward_whole(rnn, input: Tensor, hx, weights):
    """The input in the module's layout, every sequence full length: one kernel call."""
    result = rnn.cell.fused(input, hx, flat_weights(weights), rnn.bias, rnn.num_layers,
                            rnn.dropout, rnn.training, rnn.bidirectional, rnn.batch_first)
    return unpack_state(rnn, result)


def run_packed(rnn, packed: PackedSequence, hx, weights) -> Tuple[PackedSequence, object]:
    """torch's packed kernel; hx and h_n in the caller's batch order (torch's contract)."""
    def order(state, idx):
        return state if idx is None else from_tuple(tuple(h.index_select(1, idx.to(h.device))
                                                          for h in as_tuple(state)))
    result = rnn.cell.fused(packed.data, packed.batch_sizes, order(hx, packed.sorted_indices),
                            flat_weights(weights), rnn.bias, rnn.num_layers, rnn.dropout,
                            rnn.training, rnn.bidirectional)
    data, hn = unpack_state(rnn, result)
    return packed._replace(data=data), order(hn, packed.unsorted_indices)


def forward_packed(rnn, x: Tensor, hx, n: Tensor, weights):
    """Padded x (L, N, H_in) with lengths n through the packed kernel; sequences of
    length 0 (which torch cannot pack) keep h_0 and output zeros."""
    live = n > 0
    if not bool(live.all()):
        idx = live.nonzero()[:, 0]
        sub = tuple(h[:, idx.to(h.device)] for h in as_tuple(hx))
        out_l, hn_l = forward_packed(rnn, x[:, idx.to(x.device)], from_tuple(sub), n[idx], weights)
        out = x.new_zeros(x.shape[0], x.shape[1], out_l.shape[-1])
        out[:, idx.to(x.device)] = out_l
        hn = tuple(h.clone() for h in as_tuple(hx))
        for h, h_l in zip(hn, as_tuple(hn_l)):
            h[:, idx.to(h.device)] = h_l
        return out, from_tuple(hn)
    packed, hn = run_packed(rnn, pack_padded_sequence(x, n, enforce_sorted=False), hx, weights)
    return pad_packed_sequence(packed, total_length=x.shape[0])[0], hn


def forward_ragged(rnn, x: Tensor, hx, n, weights):
    """Padded x (L, N, H_in) with lengths n (None: all full), torch's padded kernel one layer
    and direction at a time (also what locked dropout between layers needs): the backward
    direction reads each sequence reversed within its length, so padding only ever trails
    and never reaches a valid step; final h_n read at each sequence's last step. With
    lengths, LSTM c_n is not available here (None; packed gives it)."""
    mask = None if n is None else step_mask(n, x.shape[0], x.device)  # (L, N, 1)
    rev = reversal_index(n, x.shape[0], x.device) if rnn.bidirectional and n is not None else None

    def run(x, state0, layer, direction):
        if direction == 1:
            xin = x.flip(0) if n is None else reverse_within(x, n, rev)
        else:
            xin = x
        h0 = from_tuple(tuple(s[None] for s in state0))  # (1, N, H) each
        result = rnn.cell.fused(xin, h0, kernel_weights(weights[rnn.index(layer, direction)]),
                                rnn.bias, 1, 0.0, rnn.training, False, False)
        out = result[0]
        if n is None:  # every sequence full: the kernel's own final state (LSTM's c too)
            last = tuple(r[0] for r in result[1:])
        else:
            last = (last_steps(out, n, state0[0]),)  # (N, H)
            out = out * mask  # zeros after each sequence's end, as pad_packed_sequence gives
        if direction == 1:
            out = out.flip(0) if n is None else reverse_within(out, n, rev)
        return out, last

    return rnn.layers_through(x, hx, run)

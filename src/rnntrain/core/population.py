"""P recurrent networks of one shape at once, laid out population-first (population methods).

``population_unroll(rnn, weights, seq, lengths)`` runs P networks shaped like ``rnn`` (a
:class:`~rnntrain.core.Recurrent`, either direction), each with its own weights, from the
zero state.
The time loop calls the cell's own ``recur`` with stacked weights (P, G*H, H) on contiguous
(P, N, H) states, so every recurrent product is one batched matmul (``cells._linear``) and
there is no vmap dispatch per step; it runs over blocks of individuals whose per-step
tensors (p, N, G*H) stay in a core's cache. With ``lengths`` a sequence's state is frozen
after its end (the step path's mask).
"""
from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import torch
from torch import Tensor

from . import compiled
from .lengths import as_lengths, reversal_index, reverse_within, step_mask
from .regularize import zone

# Bytes of one per-step tensor (p, N, G*H) of a block of individuals: the step's working set
# (gx, state, the product, the new state) then stays within a core's L2 cache.
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


def _packed(w: Tensor) -> Tensor:
    """``w`` contiguous, unless it is one network's weights expanded over the stack (stride 0:
    the online algorithms' per-row copies, ModelStep._pullback): bmm reads those in place,
    and copying them costs more than the step (13 ms against 0.7 ms for 128 rows of a
    128-unit GRU's W_hh; its backward writes each row's gradient either way)."""
    return w if w.stride(0) == 0 else w.contiguous()


def stacked_weights(rnn, weights: Dict[str, Tensor], layer: int, rows: Optional[slice] = None,
                    direction: int = 0):
    """One layer's weights of the networks ``rows`` (None: all, not sliced: ``[:]`` would put a
    slice's backward into a graph through them) in the layout ``recur`` takes stacked:
    -> (w_in (p, F, G*H), b_in (p, 1, G*H) or None, (w_hh, b_hh, *rest)), every weight
    (p, *shape) and a vector (p, K) as (p, 1, K), to broadcast over the batch axis of
    (p, N, K) states (what b_hh always was); b_hh folded into b_in where it only meets gx."""
    ws = [None if n is None else weights[n] if rows is None else weights[n][rows]
          for n in rnn.weight_slots(layer, direction)]
    w_in = _packed(ws[0].transpose(1, 2))  # (p, F, G*H)
    w_hh, b_in, b_hh, *rest = [None if w is None else _packed(w[:, None] if w.dim() == 2 else w)
                               for w in ws[1:]]
    if rnn.cell.bias_in_gx and b_hh is not None:  # b_hh only meets gx + b_hh: add it once
        b_in, b_hh = (b_hh if b_in is None else b_in + b_hh), None
    return w_in, b_in, (w_hh, b_hh, *rest)


def population_step(rnn, weights: Dict[str, Tensor], x: Tensor, state: Tuple[Tensor, ...]) -> Tuple[Tensor, ...]:
    """One time step of P networks through every layer (what ``Recurrent.step`` does for one):
    ``weights`` {name: (P, *shape)}, x (P, N, F), state a tuple of (layers, P, N, size) (h,
    then an LSTM's c) -> the new state, same layout. Plain autograd ops: per-network
    gradients (online algorithms' per-stream Jacobians) come from one backward pass."""
    dt = x[..., -1:] if rnn.cell.reads_dt else None
    finals: List[List[Tensor]] = [[] for _ in state]
    for layer in range(rnn.num_layers):
        w_in, b_in, rec = stacked_weights(rnn, weights, layer)
        old = tuple(s[layer] for s in state)
        new = zone(rnn.cell.advance(_input_part(x, w_in, b_in, None), old, rec, None, dt), old,
                   rnn.noise.zoneout, False)
        for f, s in zip(finals, new):
            f.append(s)
        x = new[0]
    return tuple(torch.stack(f) for f in finals)


def population_unroll(rnn, weights: Dict[str, Tensor], seq: Tensor, lengths: Optional[Tensor] = None,
                      *, final_only: bool = False) -> Tensor:
    """``weights`` {rnn's parameter name: (P, *shape)}, seq (L, N, F) shared by all or
    (L, P, N, F) -> top-layer outputs (P, N, L, D*H), or (P, N, 1, H) (each sequence's final
    state) with ``final_only`` (unidirectional only: a backward direction's final state is
    at step 0).

    A bidirectional core runs layer by layer, each direction as a unidirectional run of the
    same loop, the backward one on every sequence reversed within its length (its padding
    left in place, as the module's own backward direction reads it), its outputs reversed
    back; the layer's output, both directions side by side, is the next layer's input."""
    n = as_lengths(lengths, seq.shape[-2], seq.shape[0])
    if not rnn.bidirectional:
        return _directed(rnn, weights, seq, n, final_only, range(rnn.num_layers), 0)
    if final_only:
        raise ValueError("a bidirectional core's final states are at both ends of its outputs: "
                         "ask for every step (final_only=False)")
    L, N = seq.shape[0], seq.shape[-2]
    full = n if n is not None else torch.full((N,), L, dtype=torch.long)
    index = reversal_index(full, L, seq.device)  # the module's own reversal (core/lengths.py)

    def reverse(x: Tensor, order) -> Tensor:  # x permuted by `order` is (L, N, ...); an involution
        return reverse_within(x.permute(*order), full, index).permute(*order)

    x = seq
    for layer in range(rnn.num_layers):
        ahead = _directed(rnn, weights, x, n, False, [layer], 0)  # (P, N, L, H)
        shared = x.dim() == 3  # (L, N, F), or each individual's (L, P, N, F)
        back = _directed(rnn, weights, reverse(x, (0, 1, 2) if shared else (0, 2, 1, 3)), n, False, [layer], 1)
        out = torch.cat([ahead, reverse(back, (2, 1, 0, 3))], -1)  # (P, N, L, 2H)
        x = out.permute(2, 0, 1, 3)  # (L, P, N, 2H): each individual's input to the next layer
    return out


def _directed(rnn, weights: Dict[str, Tensor], seq: Tensor, n: Optional[Tensor], final_only: bool,
              layers, direction: int) -> Tensor:
    """``layers`` of one direction, run forwards over ``seq`` -> (P, N, L or 1, H)."""
    layers = list(layers)
    P = weights[rnn.weight_names(layers[0], direction)[0]].shape[0]
    N = seq.shape[-2]
    if compiled.population_supported(rnn, weights, seq):  # the C++ loop (core/compiled.py)
        return compiled.population_unroll(rnn, weights, seq, n, final_only, layers, direction)
    mask = None if n is None else step_mask(n, seq.shape[0], seq.device)  # (L, N, 1)
    block = max(1, _CACHE_BYTES // (N * rnn.cell.gates * rnn.hidden_size * seq.element_size()))
    shared = seq.dim() == 3
    return torch.cat([_block(rnn, weights, seq if shared else seq[:, i:i + block], mask, i,
                             min(block, P - i), final_only, layers, direction) for i in range(0, P, block)])


def _block(rnn, weights: Dict[str, Tensor], seq: Tensor, mask: Optional[Tensor], i: int, p: int,
           final_only: bool, layers: List[int], direction: int) -> Tensor:
    """Individuals i..i+p through ``layers`` of one direction -> (p, N, L or 1, H)."""
    cell = rnn.cell
    steps = list(seq.unbind(0))  # L x (N, F) or (p, N, F)
    masks = None if mask is None else mask.unbind(0)  # L x (N, 1)
    dts = [x_t[..., -1:] for x_t in steps] if cell.reads_dt else None  # the data's Δt column
    for layer in layers:
        w_in, b_in, (w_hh, b_hh, *rest) = stacked_weights(rnn, weights, layer, slice(i, i + p), direction)
        state = tuple(torch.zeros(p, steps[0].shape[-2], size, dtype=w_in.dtype, device=w_in.device)
                      for size in rnn.state_sizes)
        outs, last = [], final_only and layer == layers[-1]
        gx = None  # gx_t's storage, reused: recur reads gx and never keeps it
        for t, x_t in enumerate(steps):
            gx = _input_part(x_t, w_in, b_in, gx)  # (p, N, G*H)
            new = cell.advance(gx, state, (w_hh, b_hh, *rest), None, None if dts is None else dts[t])
            new = zone(new, state, rnn.noise.zoneout, False)
            if masks is None:
                state, out = new, new[0]
            else:
                state = tuple(torch.where(masks[t], a, b) for a, b in zip(new, state))
                out = torch.where(masks[t], new[0], torch.zeros_like(new[0]))
            if not last:
                outs.append(out)
        steps = [state[0]] if last else outs
    return torch.stack(steps, 2)  # (p, N, L or 1, H)

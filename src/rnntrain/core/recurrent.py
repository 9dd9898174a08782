r"""``Recurrent``: a drop-in for ``torch.nn.RNN``, ``torch.nn.LSTM`` and ``torch.nn.GRU``.

Same constructor arguments, call signature, return values, ``state_dict`` keys and
tensor layouts as torch's modules, so a state_dict saved from ``torch.nn.LSTM`` loads
and gives the same outputs and gradients. Three execution paths compute the same function:

- **compiled** (auto's choice where it is faster, :data:`.compiled.AUTO`): rnntrain's own
  C++ time loop for Elman, LSTM and GRU on CPU (:mod:`.compiled`);
- **fused**: torch's fused kernel (``torch._VF.rnn_tanh/rnn_relu/lstm/gru``, what torch's
  own modules call);
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

Beyond torch's modules: any cell of :mod:`.cells` and :mod:`.variants` (they run the step
path), an LSTM projection (``proj_size``, torch's, fused), and the recurrent regularisers
of :mod:`.regularize` (``noise``), applied in training only.
"""
from __future__ import annotations

import math
from typing import Dict, List, Optional, Tuple

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from . import compiled, fused
from .cells import Cell, fill_parameter, get_cell
from .fused import as_tuple, from_tuple
from .lengths import LengthsArg, as_lengths, step_mask
from .state import HiddenArg, StateLayout
from .regularize import Noise, drop_weight, recurrent_keep, sequence_dropout, zone
from .unroll import _under_transform, twice_differentiable, unroll_layer

PATHS = ("auto", "fused", "step", "compiled")
Weights = Tuple[Optional[Tensor], ...]  # one layer and direction: (W_ih, W_hh, b_ih, b_hh, *rest)


def detach_state(state):
    """The state with its history cut: a tensor, a tuple of tensors (LSTM), or None."""
    if isinstance(state, (tuple, list)):
        return type(state)(s.detach() for s in state)
    return None if state is None else state.detach()


class Recurrent(StateLayout, nn.Module):
    """Multi-layer recurrent network of any cell; see the module docstring.

    Args:
        mode: "RNN", "LSTM" or "GRU" (case-insensitive; "rnn_tanh"/"rnn_relu" also accepted),
            any name of ``CELLS`` ("ln_lstm", "indrnn", ...), or a
            :class:`~rnntrain.core.cells.Cell` (e.g. ``reservoir_cell(leak_rate)``).
        input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
        nonlinearity: exactly as for ``torch.nn.RNN`` (``nonlinearity`` applies to "RNN").
        proj_size: as ``torch.nn.LSTM``'s (h has proj_size units; a cell that takes it).
        path: "auto" (the fastest kernel unless a step path is needed), "compiled", "fused"
            or "step".
        noise: the regularisers applied in training (:class:`~.regularize.Noise`).
        device, dtype: factory arguments for the parameters.
    """

    def __init__(self, mode: str, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, nonlinearity: str = "tanh", *, proj_size: int = 0,
                 path: str = "auto", noise: Optional[Noise] = None, device=None, dtype=None) -> None:
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
        if not isinstance(proj_size, int) or proj_size < 0 or (proj_size and proj_size >= hidden_size):
            raise ValueError(f"proj_size must be an integer in [0, hidden_size), got {proj_size!r}")
        if proj_size and not self.cell.projectable:
            raise ValueError(f"proj_size is an LSTM's projection; the {self.cell.name} cell has none")
        self.mode = {"rnn_tanh": "RNN", "rnn_relu": "RNN", "lstm": "LSTM",
                     "gru": "GRU"}.get(self.cell.name, self.cell.name.upper())  # others: "RESERVOIR", ...
        self.nonlinearity = "relu" if self.cell.name == "rnn_relu" else "tanh"
        self.input_size, self.hidden_size = input_size, hidden_size
        self.proj_size, self.num_layers = proj_size, num_layers
        self.bias = bias
        self.batch_first = batch_first
        self.dropout = float(dropout)
        self.bidirectional = bidirectional
        self.path = path
        self.noise = noise or Noise()
        H, R, D, G = hidden_size, proj_size or hidden_size, 2 if bidirectional else 1, self.cell.gates
        # the width of each state component: h (R), then an LSTM's c (H)
        self.state_sizes: Tuple[int, ...] = (R, H)[:self.cell.state_arity]
        factory = {"device": device, "dtype": dtype}
        self._slots: List[List[Optional[str]]] = []  # per (layer, direction): W_ih, W_hh, b_ih, b_hh, *rest
        self._inits: Dict[str, str] = {}  # parameter name -> its init when not "uniform"
        for layer in range(num_layers):
            layer_in = input_size if layer == 0 else R * D
            for direction in range(D):
                sfx = f"_l{layer}" + ("_reverse" if direction == 1 else "")
                shapes = [(f"weight_ih{sfx}", (G * H, layer_in)),
                          (f"weight_hh{sfx}", self.cell.hh_shape(H, R)),
                          (f"bias_ih{sfx}", (G * H,) if bias else None),
                          (f"bias_hh{sfx}", (G * H,) if bias else None)]
                if proj_size:
                    shapes.append((f"weight_hr{sfx}", (R, H)))
                shapes += [(f"{e.name}{sfx}", e.shape(H)) for e in self.cell.extras]
                for name, shape in shapes:
                    if shape is not None:
                        setattr(self, name, nn.Parameter(torch.empty(shape, **factory)))
                self._slots.append([name if shape is not None else None for name, shape in shapes])
                for e in self.cell.extras:
                    self._inits[f"{e.name}{sfx}"] = e.init
                if self.cell.diagonal:
                    self._inits[f"weight_hh{sfx}"] = "unit"
        self.reset_parameters()

    # -- parameters -------------------------------------------------------------------
    def reset_parameters(self, generator: Optional[torch.Generator] = None) -> None:
        """torch's default, every weight and bias from U(-1/sqrt(H), 1/sqrt(H)), in
        registration order (from ``generator`` when given); a cell's own parameters by their
        :class:`~.cells.Extra` init, a diagonal W_hh from U(0, 1) (within the cell's bound)."""
        stdv = 1.0 / math.sqrt(self.hidden_size)
        with torch.no_grad():
            for name, p in self.named_parameters():
                fill_parameter(p, self._inits.get(name, "uniform"), stdv, generator)
            self.constrain_()

    def constrain_(self) -> None:
        """Project the weights onto the cell's constraints, in place (IndRNN: |W_hh| <= bound;
        an :class:`~.cells.Extra`'s ``low``); what gradient updates call after each step."""
        lows = [(k, e.low) for k, e in enumerate(self.cell.extras) if e.low is not None]
        with torch.no_grad():
            for slots in self._slots:
                if self.cell.bound > 0:
                    getattr(self, slots[1]).clamp_(-self.cell.bound, self.cell.bound)
                for k, low in lows:
                    getattr(self, slots[len(slots) - len(self.cell.extras) + k]).clamp_(min=low)

    @property
    def state_arity(self) -> int:
        return self.cell.state_arity

    @property
    def output_size(self) -> int:
        """Units of h per direction (proj_size with a projection, else hidden_size)."""
        return self.state_sizes[0]

    def index(self, layer: int, direction: int = 0) -> int:
        return layer * (2 if self.bidirectional else 1) + direction

    def weight_names(self, layer: int, direction: int = 0) -> List[str]:
        """Parameter names of one layer and direction, registration order (torch's: W_ih,
        W_hh[, b_ih, b_hh][, W_hr], then the cell's own)."""
        return [n for n in self._slots[self.index(layer, direction)] if n is not None]

    def weight_slots(self, layer: int, direction: int = 0) -> List[Optional[str]]:
        """As :meth:`weight_names` with None for absent biases: (W_ih, W_hh, b_ih, b_hh, *rest),
        the order ``cell.step`` takes."""
        return list(self._slots[self.index(layer, direction)])

    def layer_weights(self, layer: int, direction: int = 0) -> Weights:
        """(W_ih, W_hh, b_ih, b_hh, *rest) of one layer and direction (biases None without bias)."""
        p = self._parameters  # read directly (functional_call swaps here too): getattr fails a lookup first
        return tuple(None if n is None else p[n] if n in p else getattr(self, n)  # getattr: parametrize
                     for n in self._slots[self.index(layer, direction)])

    def effective_weights(self) -> List[Weights]:
        """Every layer and direction's weights as this forward uses them: W_hh after
        weight-drop in training (one mask per call)."""
        p = self.noise.weight_drop
        out = []
        for k in range(len(self._slots)):
            w = list(self.layer_weights(*divmod(k, 2 if self.bidirectional else 1)))
            w[1] = drop_weight(w[1], p, self.training)
            out.append(tuple(w))
        return out

    def extra_repr(self) -> str:
        s = f"{self.mode}, {self.input_size}, {self.hidden_size}"
        if self.mode == "RNN" and self.nonlinearity != "tanh":
            s += f", nonlinearity={self.nonlinearity!r}"
        for k, default in (("num_layers", 1), ("bias", True), ("batch_first", False),
                           ("dropout", 0.0), ("bidirectional", False), ("proj_size", 0), ("path", "auto")):
            if getattr(self, k) != default:
                s += f", {k}={getattr(self, k)!r}"
        if self.noise != Noise():
            s += f", noise={self.noise}"
        return s

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
        input = self._dropout(input, self.noise.input_dropout, 1 - batch_dim)
        x = input.transpose(0, 1) if self.batch_first else input  # (L, N, H_in)
        n = as_lengths(lengths, batch, x.shape[0])
        weights = self.effective_weights()
        path = self._resolve(path, x, hx, weights)
        locked = self.training and self.noise.variational and self.dropout > 0 and self.num_layers > 1
        lstm_final = self.state_arity == 2 and final_state
        if path == "fused" and locked and n is not None and lstm_final:
            path = "step"  # locked dropout needs one layer at a time, c_n with lengths needs packing
        if path == "fused" and n is None and not locked:  # the kernel reads batch-first input as it is
            output, hn = fused.forward_whole(self, input, hx, weights)
        else:
            if path == "compiled":
                output, hn = compiled.forward_compiled(self, x, hx, n, weights)
            elif path == "step":
                output, hn = self._forward_step(x, hx, n, weights)
            elif lstm_final and n is not None:  # c_n is not among the outputs: pack
                output, hn = fused.forward_packed(self, x, hx, n, weights)
            else:
                output, hn = fused.forward_ragged(self, x, hx, n, weights)
            output = output.transpose(0, 1) if self.batch_first else output
        output = self._dropout(output, self.noise.output_dropout, 1 - batch_dim)  # (module layout)
        if unbatched:
            output = output.squeeze(batch_dim)
            hn = tuple(h.squeeze(1) for h in hn) if isinstance(hn, tuple) else hn.squeeze(1)
        return output, hn

    def _dropout(self, x: Tensor, p: float, time_dim: int) -> Tensor:
        """Input or output dropout (core/regularize.py) of x with time on ``time_dim``."""
        return sequence_dropout(x, p, self.training, self.noise.variational, time_dim)

    def _prepare_hidden(self, hx: HiddenArg, batch: int, unbatched: bool, like: Tensor) -> HiddenArg:
        if hx is None:
            return self.initial_state(batch, device=like.device, dtype=like.dtype)
        if (self.state_arity == 2) != isinstance(hx, tuple):
            raise TypeError("LSTM expects hx as a tuple (h_0, c_0)" if self.state_arity == 2
                            else f"{self.mode} expects hx as one tensor, not a tuple")
        self._check_hidden(hx, batch, unbatched)
        return hx

    def _resolve(self, path: str, x: Tensor, hx: HiddenArg, weights: List[Weights]) -> str:
        """The path that runs: auto takes the fastest kernel (compiled where :func:`.compiled.preferred`,
        else torch's) unless a torch.func transform needs the step path; cells without a kernel, masks
        in the time loop, and a backward to be differentiated (:func:`.unroll.stepping`) always step."""
        if self.cell.fused is None or self.noise.needs_steps(self.training) or twice_differentiable():
            return "step"
        if path in ("auto", "compiled") and _under_transform([x, *as_tuple(hx), *fused.flat_weights(weights)]):
            return "step"
        return compiled.choose(self, path, x) if path in ("auto", "compiled") else path

    def layers_through(self, x: Tensor, hx: HiddenArg, run) -> Tuple[Tensor, HiddenArg]:
        """x (L, N, H_in) through every layer and direction, one layer and direction at a
        time: ``run(x, state0, layer, direction) -> (out (L, N, R), final state tuple)``.
        Dropout between layers as torch's kernel applies it, or one mask per sequence
        (``noise.variational``). A run that returns only h (the ragged kernel for an LSTM
        with lengths) gives no final state (None)."""
        states = as_tuple(hx)  # each (D*layers, N, size)
        D = 2 if self.bidirectional else 1
        finals: List[List[Tensor]] = [[] for _ in range(self.state_arity)]
        for layer in range(self.num_layers):
            if layer > 0 and self.dropout > 0:
                x = sequence_dropout(x, self.dropout, self.training, self.noise.variational, 0)
            outs = []
            for direction in range(D):
                k = layer * D + direction
                out, state = run(x, tuple(s[k] for s in states), layer, direction)
                outs.append(out)
                for i, s in enumerate(state):
                    finals[i].append(s)
            x = outs[0] if D == 1 else torch.cat(outs, dim=-1)  # (L, N, D*R)
        if not all(finals):
            return x, None
        return x, from_tuple(tuple(f[0][None] if len(f) == 1 else torch.stack(f) for f in finals))

    def _forward_step(self, x: Tensor, hx: HiddenArg, n: Optional[Tensor], weights: List[Weights]):
        """x (L, N, H_in) time-major through the cells' own step, masked with lengths n."""
        mask = None if n is None else step_mask(n, x.shape[0], x.device)
        dt = x[..., -1:] if self.cell.reads_dt else None  # (L, N, 1): the data's Δt column

        def run(x, state0, layer, direction):
            keep = recurrent_keep(self.noise, self.training, x.shape[1], self.output_size, x)
            return unroll_layer(self.cell, x, state0, *weights[self.index(layer, direction)],
                                reverse=direction == 1, mask=mask, keep=keep, dt=dt,
                                zoneout=self.noise.zoneout, training=self.training)

        return self.layers_through(x, hx, run)

    def _forward_packed_input(self, packed: PackedSequence, hx: HiddenArg, path: str):
        """torch's PackedSequence contract: hx and h_n in the caller's batch order, the
        output packed like the input (same batch_sizes and sorted/unsorted indices)."""
        batch = int(packed.batch_sizes[0])
        if isinstance(hx, list):
            hx = tuple(hx)
        hx = self._prepare_hidden(hx, batch, False, packed.data)
        weights = self.effective_weights()
        path = self._resolve(path, packed.data, hx, weights)
        locked = self.training and self.noise.variational and self.dropout > 0 and self.num_layers > 1
        if path in ("fused", "compiled") and not locked:  # packed data: torch's packed kernel
            return fused.run_packed(self, packed, hx, weights)
        x, n = pad_packed_sequence(packed)  # (L, N, H_in) in the caller's order, lengths (N,)
        out, hn = self._forward_step(x, hx, as_lengths(n, batch, x.shape[0]), weights)
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

        Dropout between layers and recurrent dropout are not applied (they belong to
        training on whole sequences); zoneout's evaluation mixture is. Returns the new state
        in the same layout as ``hx``."""
        if self.bidirectional:
            raise ValueError("a single step is undefined for a bidirectional network "
                             "(the backward direction needs the whole sequence)")
        states = as_tuple(hx)
        dt = x[..., -1:] if self.cell.reads_dt else None
        finals: List[List[Tensor]] = [[] for _ in range(self.state_arity)]
        for layer in range(self.num_layers):
            old = tuple(s[layer] for s in states)
            state = zone(self.cell.step(x, old, *self.layer_weights(layer), dt=dt), old,
                         self.noise.zoneout, False)
            for i, s in enumerate(state):
                finals[i].append(s)
            x = state[0]
        return from_tuple(tuple(torch.stack(f) for f in finals))


def constrained(model: nn.Module) -> List[Recurrent]:
    """The recurrent cores of ``model`` whose cells have a constraint (:meth:`Recurrent.constrain_`)."""
    return [m for m in model.modules() if isinstance(m, Recurrent) and m.cell.constrained]


def constrain(model: nn.Module) -> None:
    """Every recurrent core of ``model`` projected onto its cell's constraint, in place."""
    for m in constrained(model):
        m.constrain_()

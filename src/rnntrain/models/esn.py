r"""The echo state network: a fixed random reservoir and a linear readout fitted in closed form.

A :class:`SequenceModel` whose core is the core's reservoir cell
(:func:`rnntrain.core.cells.reservoir_cell`, weights from :mod:`.reservoir`, never
trained: ``requires_grad=False``) and whose readout is linear,

.. math::  y_t = W_{out} f_t + c,\qquad f_t = x_t \text{ or } [x_t; u_t]\ (\text{``readout_inputs``}),

fitted by the ``esn`` algorithm (ridge regression or recursive least squares). Because it
is a SequenceModel with the usual calling convention, evaluation, run directories,
checkpoints and forecasting work unchanged. Prediction modes:

- teacher-forced one-step prediction: :meth:`EchoStateNetwork.predict` (every step);
- free-running (closed-loop) generation: :meth:`EchoStateNetwork.generate`.
"""
from __future__ import annotations

import warnings
from typing import Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from ..core.cells import reservoir_cell
from ..core.recurrent import Recurrent
from ..core.unroll import _under_transform, unroll_layer
from ..errors import UserError
from ..tasks.base import TaskSpec, evaluating
from .encoders import make_encoder
from .generate import closed_loop
from .readouts import last_valid
from .reservoir import ReservoirConfig, reservoir_weights, use_sparse
from .sequence_model import SequenceModel


def _csr32(w: Tensor) -> Tensor:
    """W as CSR with int32 indices: torch's CPU CSR matvec is ~1.7x faster with them than
    with the default int64 ones (measured at 2000 units, density 0.1: 0.17 vs 0.37 ms)."""
    with warnings.catch_warnings():  # torch's "sparse CSR support is in beta": noise to a user
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        csr = w.to_sparse_csr()
    if csr.values().numel() >= 2 ** 31 - 1:
        return csr
    return torch.sparse_csr_tensor(csr.crow_indices().int(), csr.col_indices().int(),
                                   csr.values(), csr.shape, check_invariants=False)


def _needs_graph(*tensors: Optional[Tensor]) -> bool:
    """Whether the collection must be differentiable or transformable (then: the core's unroll)."""
    grad = torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)
    return grad or _under_transform(tensors) or torch.jit.is_tracing()  # (an export traces it)


def collect_states(x: Tensor, x0: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Optional[Tensor],
                   b_hh: Optional[Tensor], leak_rate: float) -> Tuple[Tensor, Tensor]:
    r"""The reservoir states over a sequence, computed in place: the in-place twin of
    :func:`rnntrain.core.cells.reservoir_cell`'s step (same equation, same operations, in the
    same order), for collection without autograd; it must stay equal to
    :func:`rnntrain.core.recurrent.unroll_layer` with that cell.

    x (L, N, F), x0 (N, H) (read, never written) -> states (L, N, H), final state (N, H).
    The input part :math:`W_{in} u_t + b` of every step is one product written into the
    state buffer; step t then adds :math:`W x_{t-1}` into its row (``addmv_`` at batch 1,
    with W dense or CSR), applies tanh in place and, when a < 1, mixes in
    :math:`(1 - a) x_{t-1}`: no tensor is allocated per step. With W dense the states equal
    the cell's bit for bit; with W CSR at batch 1 to rounding (torch's CSR ``addmv_`` and
    ``mm`` kernels sum in different orders: ~1e-16 apart).
    """
    a = float(leak_rate)
    states = torch.nn.functional.linear(x, w_ih, b_ih)  # (L, N, H): gx, overwritten by x_t
    if b_hh is not None:
        states.add_(b_hh)
    if not states.is_contiguous():
        states = states.contiguous()
    L, N, H = states.shape
    sparse = w_hh.layout != torch.strided
    keep = torch.empty(H if N == 1 else (N, H), dtype=states.dtype, device=states.device)
    with torch.inference_mode():  # the buffer is an ordinary tensor: only the dispatch is lighter
        if N == 1:  # (H,) rows: one addmv_ a step
            prev = x0[0]
            for cur in states.view(L, H).unbind(0):
                cur.addmv_(w_hh, prev)
                cur.tanh_()
                if a < 1.0:  # x_t = a tanh(.) + (1 - a) x_{t-1}, the cell's operations
                    torch.mul(prev, 1.0 - a, out=keep)
                    cur.mul_(a).add_(keep)
                prev = cur
        else:
            prev = x0
            for cur in states.unbind(0):  # (N, H)
                if sparse:
                    cur.add_(torch.mm(w_hh, prev.t()).t())
                else:
                    cur.addmm_(prev, w_hh.t())
                cur.tanh_()
                if a < 1.0:
                    torch.mul(prev, 1.0 - a, out=keep)
                    cur.mul_(a).add_(keep)
                prev = cur
    return states, states[-1].clone()


class LinearReadout(nn.Module):
    """y = W_out f + c at the last valid step (N, O) or at every step (N, L, O); f (N, L, D_f)."""

    def __init__(self, features: int, out_features: int, per_step: bool) -> None:
        super().__init__()
        self.linear = nn.Linear(features, out_features)
        self.per_step = per_step
        nn.init.zeros_(self.linear.weight)  # fitted in closed form; zero until then
        nn.init.zeros_(self.linear.bias)

    @property
    def reads_all_steps(self) -> bool:  # the readout protocol (models/readouts.py)
        return self.per_step

    def forward(self, features: Tensor, lengths: Optional[Tensor] = None) -> Tensor:
        if self.per_step:
            return self.linear(features)
        return self.linear(last_valid(features, lengths))



class EchoStateNetwork(SequenceModel):
    """encoder -> reservoir (fixed) -> linear readout (fitted); see the module docstring."""

    def __init__(self, encoder: nn.Module, rnn: Recurrent, readout: LinearReadout,
                 config: ReservoirConfig) -> None:
        super().__init__(encoder, rnn, readout)
        self.readout_inputs = config.readout_inputs
        self.leak_rate = float(config.leak_rate)  # the cell's a, for the in-place collection
        self.sparse = use_sparse(config, rnn.hidden_size)
        self._csr: Optional[Tuple[Tuple[int, int, int], Tensor]] = None  # ((ptr, version, device), W)

    @property
    def feature_size(self) -> int:
        return self.readout.linear.in_features

    def _w(self) -> Tensor:
        """W as the step multiplies it: the parameter itself, or a cached CSR copy of it."""
        w = self.rnn.weight_hh_l0
        if not self.sparse:
            return w
        key = (w.data_ptr(), w._version, hash(w.device))
        if self._csr is None or self._csr[0] != key:
            self._csr = (key, _csr32(w.detach()))
        return self._csr[1]

    def features(self, inputs: Tensor, state: Optional[Tensor] = None,
                 lengths: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        """Readout features f_t at every step and the final state.

        inputs (N, L, F) (or token ids (N, L)); state (1, N, H) or None (zeros); lengths (N,)
        -> features (N, L, H) or (N, L, H + F) with ``readout_inputs``, state (1, N, H) (with
        lengths: the state at each sequence's last step; a forward-only reservoir's valid
        steps never see the padding, so the features there are exact).
        Without autograd (the fit, prediction, generation) the states are collected in place by
        :func:`collect_states`; otherwise by the core's unroll of the cell.
        """
        u = self.encoder(inputs)  # (N, L, F)
        if state is None:
            state = self.rnn.initial_state(u.shape[0], device=u.device, dtype=u.dtype)
        w_ih, _, b_ih, b_hh = self.rnn.layer_weights(0)
        w = self._w()
        x = u.transpose(0, 1)  # (L, N, F)
        if x.shape[0] > 0 and not _needs_graph(x, state, w_ih, w, b_ih, b_hh):
            states, h = collect_states(x, state[0], w_ih, w, b_ih, b_hh, self.leak_rate)
        else:  # the core's own unroll (autograd, torch.func), W dense or CSR
            states, (h,) = unroll_layer(self.rnn.cell, x, (state[0],), w_ih, w, b_ih, b_hh)
        states = states.transpose(0, 1)  # (N, L, H)
        if lengths is not None:
            h = torch.where((lengths == 0).to(h.device)[:, None], state[0], last_valid(states, lengths))
        feats = torch.cat([states, u], dim=-1) if self.readout_inputs else states
        return feats, h[None]

    def forward(self, inputs: Tensor, state=None, *, lengths=None, final_state: bool = True,
                decoder=None):
        feats, state = self.features(inputs, state, lengths)
        return self.readout(feats, lengths), state

    def unroll(self, features: Tensor, state=None, *, lengths=None, final_state: bool = True):
        raise UserError("an echo state network's states come from features(); its reservoir is fixed")

    def outputs_and_states(self, inputs: Tensor, lengths: Optional[Tensor] = None, decoder=None):
        feats, _ = self.features(inputs, None, lengths)
        return self.readout(feats, lengths), feats

    def population_forward(self, params, inputs: Tensor, lengths: Optional[Tensor] = None,
                           decoder=None) -> Tensor:
        """P readouts over the one fixed reservoir: the features are shared by every individual."""
        from torch.func import functional_call, vmap
        feats, _ = self.features(inputs, None, lengths)
        ro = {k[len("readout."):]: v for k, v in params.items() if k.startswith("readout.")}
        return vmap(lambda p: functional_call(self.readout, p, (feats, lengths)))(ro)

    def fit_readout(self, weight: Tensor, bias: Tensor) -> None:
        """Write closed-form readout weights: weight (O, D_f), bias (O,)."""
        lin = self.readout.linear
        with torch.no_grad():
            lin.weight.copy_(weight.to(lin.weight))
            lin.bias.copy_(bias.to(lin.bias))

    @property
    def output_size(self) -> int:
        return self.readout.linear.out_features

    def predict(self, inputs: Tensor, state=None) -> Tuple[Tensor, Tensor]:
        """Teacher-forced one-step predictions at every step: (N, L, O), and the state."""
        with evaluating(self):
            feats, state = self.features(inputs, state)
            return self.readout.linear(feats), state

    def generate(self, context: Tensor, steps: int, *, feedback: Optional[Sequence[int]] = None,
                 exogenous: Optional[Tensor] = None) -> Tensor:
        """Teacher forcing over ``context`` (N, L, F), then ``steps`` free-running outputs
        (N, steps, O), each fed back as the next input (:func:`.generate.closed_loop`)."""
        return closed_loop(self, context, steps, feedback=feedback, exogenous=exogenous)


def build_esn(hidden: int, spectral_radius: float, config: ReservoirConfig, spec: TaskSpec, *,
              embedding: int = 0, readout: str = "auto",
              generator: Optional[torch.Generator] = None, device=None, dtype=None) -> EchoStateNetwork:
    """An echo state network for ``spec``: reservoir of ``hidden`` units drawn from ``generator``."""
    encoder = make_encoder(spec.input_size, spec.tokens, embedding)
    F = encoder.out_features
    rnn = Recurrent(reservoir_cell(config.leak_rate), F, hidden, 1, bias=True, batch_first=True,
                    path="step")
    w_in, w, b = reservoir_weights(hidden, F, spectral_radius, config, generator)
    with torch.no_grad():
        rnn.weight_ih_l0.copy_(w_in)
        rnn.weight_hh_l0.copy_(w)
        rnn.bias_ih_l0.copy_(b)
        rnn.bias_hh_l0.zero_()
    rnn.requires_grad_(False)  # fixed: no algorithm may change the reservoir
    if isinstance(encoder, nn.Embedding):
        encoder.requires_grad_(False)
    per_step = spec.per_step if readout == "auto" else readout == "every"
    head = LinearReadout(hidden + (F if config.readout_inputs else 0), spec.output_size, per_step)
    return EchoStateNetwork(encoder, rnn, head, config).to(device=device, dtype=dtype)

r"""The recurrent core's single step as a pure function of a flat parameter vector, with
its Jacobians (what RTRL, UORO, SnAp and CRBP differentiate).

``s_t = f(θ, s_{t-1}, x_t)`` is one step of the whole core (``Recurrent.step``, every
layer), with the state flattened: ``s = [h_layer0 .. h_layerK, c_layer0 .. c_layerK]``.
``D = ∂f/∂s`` and ``I = ∂f/∂θ`` (RTRL), and the products the cheaper algorithms need, D·v
and u·I, run in one call of the compiled kernel for the cells it implements
(``core/kernels/products.cpp``, tested against autograd), else by plain autograd on the
same step through per-row copies of the weights (:meth:`ModelStep._pullback`): torch.func's
per-call cost, about a millisecond, was forty BPTT steps of a 64-unit network, and
autograd's forty small ops a step were still most of UORO's and SnAp's step. The generic
:class:`StepFunction` (any step written as a function of θ) keeps torch.func.

Shapes: ``N`` streams, ``S`` state size (arity·layers·H), ``P`` recurrent parameters,
``F`` encoded input features.
"""
from __future__ import annotations

import copy

from abc import ABC, abstractmethod
from typing import List, Optional, Tuple

import torch
from torch import Tensor, nn
from torch.func import functional_call, jacrev, jvp, vjp, vmap

from ..core import Recurrent, compiled
from ..core.fused import as_tuple, from_tuple
from ..core.population import population_step

JACOBIAN_CHUNK_BYTES = 16 << 20  # bound on one group of streams' Jacobian temporaries


# ----------------------------------------------------------------- the step as a function

class StepFunction(ABC):
    """A recurrent step ``f(theta (P,), s (N, S), x (N, F)) -> s' (N, S)`` and its Jacobians.

    ``readout_slice`` is the part of ``s`` the readout reads (the top layer's h).
    """

    P: int
    S: int
    readout_slice: slice

    @abstractmethod
    def __call__(self, theta: Tensor, s: Tensor, x: Tensor) -> Tensor:
        ...

    @abstractmethod
    def theta(self) -> Tensor:
        """The current parameters as one flat detached vector (P,)."""

    def structural(self) -> "StepFunction":
        """A step with the same Jacobian sparsity and no accidental exact zeros (for probing)."""
        return self

    def single(self, theta: Tensor, s1: Tensor, x1: Tensor) -> Tensor:
        """One stream: s1 (S,), x1 (F,) -> (S,)."""
        return self(theta, s1[None], x1[None])[0]

    def jacobians(self, theta: Tensor, s: Tensor, x: Tensor, out: Optional[Tensor] = None
                  ) -> Tuple[Tensor, Tensor, Tensor]:
        """(s' (N, S), D (N, S, S), I (N, S, P)), per stream, by reverse mode (S vjps).

        ``out`` (N, S, P), if given, receives I (and is returned as I): callers that keep I
        in a buffer of their own (RTRL's influence) avoid a fresh N·S·P tensor per step."""
        def f(th, s1, x1):
            out = self.single(th, s1, x1)
            return out, out

        (D, I), s_next = vmap(jacrev(f, argnums=(1, 0), has_aux=True), in_dims=(None, 0, 0))(theta, s, x)
        return s_next, D, (I if out is None else out.copy_(I))

    def jvp_state(self, theta: Tensor, s: Tensor, x: Tensor, v: Tensor) -> Tuple[Tensor, Tensor]:
        """(s', D v) for v (N, S): forward mode, one pass (streams are independent rows)."""
        return jvp(lambda s_: self(theta, s_, x), (s,), (v,))

    def vjp_params(self, theta: Tensor, s: Tensor, x: Tensor, V: Tensor) -> Tensor:
        """Per-stream u I for cotangents V (N, K, S) -> (N, K, P) (one forward per stream)."""
        def per_stream(s1, x1, v1):
            _, pull = vjp(lambda th: self.single(th, s1, x1), theta)
            return vmap(lambda u: pull(u)[0])(v1)

        return vmap(per_stream)(s, x, V)

    def products(self, theta: Tensor, s: Tensor, x: Tensor, cot: Tensor, tan: Tensor
                 ) -> Tuple[Tensor, Tensor, Tensor]:
        """Both products at one point, K of each per stream: cotangents cot (N, K, S) and
        tangents tan (N, K, S) -> (s' (N, S), cot I (N, K, P), D tan (N, K, S))."""
        outs = [self.jvp_state(theta, s, x, tan[:, k]) for k in range(tan.shape[1])]
        s_next = outs[0][0] if outs else self(theta, s, x)
        Dt = torch.stack([o[1] for o in outs], 1) if outs else tan
        return s_next, self.vjp_params(theta, s, x, cot), Dt


class _Stepper(nn.Module):
    """``Recurrent.step`` as a module's forward, so ``functional_call`` can run it."""

    def __init__(self, rnn: Recurrent) -> None:
        super().__init__()
        self.rnn = rnn

    def forward(self, x: Tensor, hx):
        return self.rnn.step(x, hx)


class ModelStep(StepFunction):
    """The single step of a :class:`rnntrain.Recurrent` (every layer) over a flat vector.

    The flat order is ``rnn.named_parameters()`` (torch's: per layer W_ih, W_hh, b_ih, b_hh).
    """

    def __init__(self, rnn: Recurrent) -> None:
        self.rnn = rnn
        self.stepper = _Stepper(rnn)
        self.names = [n for n, _ in rnn.named_parameters()]
        self.keys = ["rnn." + n for n in self.names]  # the names functional_call sees
        self._basis: Optional[Tensor] = None  # (S, S) identity: the cotangents of jacobians()
        self.shapes = [p.shape for p in rnn.parameters()]
        self.sizes = [p.numel() for p in rnn.parameters()]
        self.P = sum(self.sizes)
        self.offsets = dict(zip(self.names, [sum(self.sizes[:i]) for i in range(len(self.sizes))]))
        self.layers, self.arity = rnn.num_layers, rnn.state_arity
        self.S = self.layers * sum(rnn.state_sizes)
        R = rnn.output_size  # h's width (an LSTM projection's, or H)
        self.readout_slice = slice((self.layers - 1) * R, self.layers * R)

    def theta(self) -> Tensor:
        return torch.cat([p.detach().reshape(-1) for p in self.rnn.parameters()])

    def split(self, flat: Tensor) -> List[Tensor]:
        """A flat (P,) vector as tensors shaped like the parameters (views)."""
        return [t.view(shape) for t, shape in zip(flat.split(self.sizes), self.shapes)]

    def to_hx(self, s: Tensor):
        """(N, S) -> the core's state layout (see ``Recurrent.unflat_state``)."""
        return self.rnn.unflat_state(s)

    def from_hx(self, hx) -> Tensor:
        """The core's state layout -> (N, S) (see ``Recurrent.flat_state``)."""
        return self.rnn.flat_state(hx)

    def __call__(self, theta: Tensor, s: Tensor, x: Tensor) -> Tensor:
        return self.step_params(self.split(theta), s, x)

    def step_params(self, params, s: Tensor, x: Tensor) -> Tensor:
        """The step with the parameters as tensors shaped like the model's (a sequence)."""
        return self.from_hx(functional_call(self.stepper, dict(zip(self.keys, params)), (x, self.to_hx(s))))

    def jacobians(self, theta: Tensor, s: Tensor, x: Tensor, out: Optional[Tensor] = None
                  ) -> Tuple[Tensor, Tensor, Tensor]:
        """(s', D, I) as :meth:`StepFunction.jacobians`, without torch.func: the kernel's S
        basis tangents and cotangents, or one backward pass of the S basis cotangents through
        per-row weight copies (:meth:`_pullback`). Each block of I is written once, straight
        into ``out``'s columns (no fresh (N, S, P) tensor when ``out`` is given)."""
        N, S = s.shape
        if self._basis is None or self._basis.dtype != s.dtype or self._basis.device != s.device:
            self._basis = torch.eye(S, dtype=s.dtype, device=s.device)
        basis = self._basis
        if compiled.products_supported(self.rnn, s):
            # one kernel call: the S basis cotangents give I's rows, the S basis tangents D's
            # columns (kernels/products.cpp). Through torch.func this was S vjps a stream and,
            # at the first step of a process, torch._dynamo's import (1.2 s)
            eye = basis.expand(N, S, S).contiguous()
            s_next, I, Dt = compiled.step_products(self.rnn, dict(zip(self.names, self.split(theta))),
                                                   self.offsets, self.P, s, x, eye, eye, out)
            return s_next, Dt.transpose(1, 2), I
        if out is None:
            out = s.new_empty(N, S, self.P)
        # other cells: the step of per-row weight copies (the form of products() below), each
        # stream repeated S times with the basis cotangents e_1 .. e_S, pulled back once: row i
        # of every stream's D and I in one backward pass. torch.func's vjp per stream took 1.0-2.1x
        # as long at 16-64 units (0.7x at a 128-unit LN-GRU) and imported torch._dynamo at a
        # process's first step (autograd's is_grads_batched, the analyses' route, loops over the
        # basis for layer norm's backward).
        # Streams go in groups whose temporaries stay under JACOBIAN_CHUNK_BYTES: the allocator
        # then reuses the same memory every step instead of mapping (and faulting in) fresh
        # pages for an N·S·P tensor, which costs more than the GEMM itself at n = 128
        group = max(1, JACOBIAN_CHUNK_BYTES // (S * self.P * s.element_size()))
        s_next, D = [], []
        for lo in range(0, N, group):
            hi = min(N, lo + group)
            nxt, dI, dD = self._pullback(theta, s[lo:hi], x[lo:hi], basis.expand(hi - lo, S, S))
            for blk, dst, shape in zip(dI, out[lo:hi].split(self.sizes, dim=2), self.shapes):
                dst.view(hi - lo, S, *shape).copy_(blk.unflatten(0, (hi - lo, S)))  # (G, S, P_k) columns of I
            s_next.append(nxt)
            D.append(dD)
        if len(D) == 1:
            return s_next[0], D[0], out
        return torch.cat(s_next), torch.cat(D), out

    # -- Jacobian products by plain autograd ------------------------------------------------
    # torch.func's transforms cost about a millisecond per call in Python dispatch, forty BPTT
    # steps of a 64-unit network; products() runs the same step (population_step: the cells'
    # own recur on stacked weights) once, through per-row copies of the weights, and pulls
    # back twice (ARCHITECTURE.md, "Online products by plain autograd").

    def _pullback(self, theta: Tensor, s: Tensor, x: Tensor, cot: Tensor, tan: Optional[Tensor] = None):
        """K cotangents and tangents a stream, cot and tan (N, K, S), through the step of
        per-row weight copies (row n k: stream n's s and x, the weights theta) ->
        (s' (N, S), cot I as one (N K, *shape) block per parameter tensor, cot D (N, K, S)),
        and with ``tan``, D tan (N, K, S) in place of cot D.

        Each parameter tensor is a leaf of its own (an expanded view: no copy): through one
        flat leaf, every tensor's slice of it pulled back into a zero (N K, P) gradient."""
        N, K, S = cot.shape
        with torch.enable_grad():
            leaves = [t.detach().expand(N * K, *shape).requires_grad_()
                      for t, shape in zip(self.split(theta), self.shapes)]  # each (N K, *shape)
            rows = s.detach().repeat_interleave(K, 0).requires_grad_()  # (N K, S)
            hx = as_tuple(self.to_hx(rows))  # each (layers, N K, size)
            new = population_step(self.rnn, dict(zip(self.names, leaves)),
                                  x.repeat_interleave(K, 0)[:, None], tuple(h[:, :, None] for h in hx))
            out = self.from_hx(from_tuple(tuple(h[:, :, 0] for h in new)))  # (N K, S)
            w = cot.reshape(N * K, S).detach()
            if tan is not None:  # w D is linear in w: its pullback along tan is D tan
                w = w.clone().requires_grad_()
            *dI, dD = torch.autograd.grad(out, leaves + [rows], w, create_graph=tan is not None,
                                          allow_unused=True)
            dD = torch.zeros_like(rows) if dD is None else dD
            if tan is not None:
                (Dt,) = torch.autograd.grad(dD, w, tan.reshape(N * K, S), allow_unused=True)
                dD = torch.zeros_like(w) if Dt is None else Dt
        dI = [torch.zeros_like(leaf) if g is None else g.detach() for g, leaf in zip(dI, leaves)]
        return out.detach()[::K], dI, dD.detach().view(N, K, S)

    def products(self, theta: Tensor, s: Tensor, x: Tensor, cot: Tensor, tan: Tensor
                 ) -> Tuple[Tensor, Tensor, Tensor]:
        """:meth:`StepFunction.products`. Elman, LSTM and GRU stacks run it in one call of
        the compiled kernel (:func:`rnntrain.core.compiled.step_products`); other cells from
        one forward and two backward passes (:meth:`_pullback`): the pullback of the
        cotangents w = cot, kept differentiable, gives cot I and w D; w D is linear in w, so
        its pullback along tan is D tan (the double-backward form of a forward-mode product)."""
        if compiled.products_supported(self.rnn, s):  # the same step in C++ (kernels/products.cpp)
            return compiled.step_products(self.rnn, dict(zip(self.names, self.split(theta))), self.offsets,
                                          self.P, s, x, cot, tan)
        N, K, _ = cot.shape
        s_next, dI, Dt = self._pullback(theta, s, x, cot, tan)
        return s_next, torch.cat([g.reshape(N, K, -1) for g in dI], 2), Dt

    def structural(self) -> "ModelStep":
        # ReLU units are exactly zero (with zero derivative) half the time; tanh has the same
        # structure (elementwise) and no exact zeros, so probe sparsity with it.
        rnn = copy.deepcopy(self.rnn).double()
        rnn.cell = rnn.cell.smooth or rnn.cell  # ReLU's exact zeros, clamps: probe a smooth twin
        return ModelStep(rnn)

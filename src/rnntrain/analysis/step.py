r"""The one object every analysis works on: a step function ``F(h, x) -> h'`` on a flat state.

Analyses (gradient flow, fixed points, Lyapunov exponents, behaviour) are written once
against a generic single step::

    step(h, x) -> h'        h, h' (D,) flat state;  x (I,) the core's input at that step

and take every Jacobian ``∂h'/∂h`` from that step (:func:`batched_jacobians`, under vmap).
Any callable of that shape works (a linear map ``h -> ρQh`` in the known-answer tests);
:func:`model_step` is the thin adapter for a model: it calls ``Recurrent.step`` (the
cells' own single steps, so every cell of the core, present and future, works unchanged)
with the state of all layers flattened into one vector.

Flat state layout (state components of widths ``sizes``: (H,) for (h,), (R, H) for an
LSTM's (h, c), R = H or its projection; ``K`` layers)::

    h_flat = concat(state[0][layer 0], ..., state[0][layer K-1],     # hidden states
                    state[1][layer 0], ..., state[1][layer K-1])     # LSTM cell states
    D = K * sum(sizes)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, List, Optional, Tuple

import torch
from torch import Tensor
from torch.func import vmap

from ..errors import UserError

StepFn = Callable[[Tensor, Tensor], Tensor]  # (h (D,), x (I,)) -> h' (D,)


@dataclass
class ModelStep:
    """A model's core as a flat step function, plus what is needed to read its layout.

    step(h, x): h (D,), x (I,) encoded input -> h' (D,).
    """

    model: torch.nn.Module
    core_name: str  # which of model.cores()
    sizes: Tuple[int, ...]  # the width of each state component (h, then an LSTM's c)
    layers: int  # K
    input_size: int  # I: the core's input size (after the encoder)

    @property
    def arity(self) -> int:
        return len(self.sizes)

    @property
    def dim(self) -> int:
        return self.layers * sum(self.sizes)

    @property
    def core(self):
        return self.model.cores()[self.core_name]

    def unflatten(self, h: Tensor):
        """(D,) -> the core's state layout with a batch of one: (K, 1, H) or a tuple."""
        return self.core.unflat_state(h.reshape(1, -1))

    def flatten(self, state) -> Tensor:
        """The core's state (K, N, H) or tuple -> (N, D)."""
        return self.core.flat_state(state)

    def __call__(self, h: Tensor, x: Tensor) -> Tensor:
        new = self.core.step(x.unsqueeze(0), self.unflatten(h))
        return self.flatten(new)[0]

    def part(self, h: Tensor, component: int, layer: Optional[int] = None) -> Tensor:
        """The slice of a flat state (..., D) holding state component ``component``
        (0: h, 1: LSTM c) of ``layer`` (None: every layer)."""
        K, H = self.layers, self.sizes[component]
        a = K * sum(self.sizes[:component])
        if layer is None:
            return h[..., a:a + K * H]
        return h[..., a + layer * H:a + (layer + 1) * H]

    def encode(self, inputs: Tensor) -> Tensor:
        """Task inputs (N, L, F) or token ids (N, L) -> the core's inputs (N, L, I) (the
        model's first core reads them; an encoder-decoder's decoder reads targets)."""
        if self.core_name != next(iter(self.model.cores())):
            raise UserError(f"the {self.core_name} core does not read the model's inputs; "
                            f"analyse --core {next(iter(self.model.cores()))}")
        return self.model.encode(inputs)

    def zero_state(self, n: int = 1) -> Tensor:
        p = next(self.model.parameters())
        return torch.zeros(n, self.dim, dtype=p.dtype, device=p.device)


def model_step(model, core: Optional[str] = None) -> ModelStep:
    """The step function of one of a model's cores (eval mode: no dropout between layers):
    ``core`` names one of ``model.cores()``; None: the first (the one reading the inputs;
    an encoder-decoder's encoder)."""
    cores = model.cores()
    name = core or next(iter(cores))
    if name not in cores:
        raise UserError(f"this model has no core '{name}'; its cores: {', '.join(cores)} (--core)")
    rnn = cores[name]
    if rnn.bidirectional:
        raise UserError(f"dynamics and gradient flow need a single step, which the bidirectional "
                        f"{name} core does not have: analyse a unidirectional run"
                        + (f" or another core ({', '.join(c for c in cores if c != name)})" if len(cores) > 1 else ""))
    model.eval()
    return ModelStep(model, name, tuple(rnn.state_sizes), rnn.num_layers, rnn.input_size)


def trajectory(step: StepFn, h0: Tensor, xs: Tensor) -> Tensor:
    """States visited from ``h0`` driven by ``xs``: h0 (B, D), xs (B, T, I) -> (B, T+1, D)
    (index 0 is h0). Batched with vmap over the B starting states."""
    f = vmap(step)
    hs: List[Tensor] = [h0]
    h = h0
    for t in range(xs.shape[1]):
        h = f(h, xs[:, t])
        hs.append(h)
    return torch.stack(hs, dim=1)


def step_jacobians(step: StepFn, hs: Tensor, xs: Tensor) -> Tensor:
    """∂F/∂h at every (h, x): hs (..., D), xs (..., I) -> (..., D, D)."""
    lead = hs.shape[:-1]
    n = hs[..., 0].numel()
    jac = batched_jacobians(vmap(step), hs.reshape(n, hs.shape[-1]), xs.reshape(n, xs.shape[-1]))
    return jac.reshape(*lead, hs.shape[-1], hs.shape[-1])


def batched_jacobians(f: Callable[..., Tensor], h: Tensor, *args: Tensor) -> Tensor:
    """Row by row ∂f(h, *args)/∂h of a function whose rows are independent (a vmapped step):
    h (B, D) -> (B, D', D) for f's output (B, D').

    One backward pass over the D' basis cotangents at once (autograd's ``is_grads_batched``)
    rather than ``torch.func.jacrev``: the same numbers, the same time or less (0.65-1.04x at
    16-256 units, Elman, LSTM, GRU, layer-normalised LSTM), and without torch.func's grad
    transform, whose first call imports ``torch._dynamo`` (2 s of every analysis command).
    The model's weights are not differentiated (only h is asked for)."""
    with torch.enable_grad():
        h = h.detach().requires_grad_()
        out = f(h, *args)
        eye = torch.eye(out.shape[-1], dtype=out.dtype, device=out.device)
        cotangents = eye[:, None, :].expand(out.shape[-1], *out.shape)  # (D', B, D')
        (rows,) = torch.autograd.grad(out, h, cotangents, is_grads_batched=True)  # (D', B, D)
    return rows.transpose(0, 1)


def constant_input(x: Tensor, steps: int, batch: int = 1) -> Tensor:
    """A constant input x (I,) repeated: (batch, steps, I)."""
    return x.reshape(1, 1, -1).expand(batch, steps, x.numel())


def no_input(dtype=torch.float32) -> Tensor:
    """The input of an autonomous generic step function: an empty vector (0,)."""
    return torch.zeros(0, dtype=dtype)


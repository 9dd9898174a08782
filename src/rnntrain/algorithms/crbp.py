r"""Causal recursive backpropagation for locally recurrent networks (Campolucci, Uncini,
Piazza & Rao 1999, "On-line learning algorithms for locally recurrent neural networks",
IEEE Trans. Neural Networks 10(2):253-271, sec. III).

In a locally recurrent network every unit feeds back only to itself (the ``local`` cell,
:mod:`rnntrain.core.cells`), so the state Jacobian D_t is diagonal within a layer and the
influence of a unit's parameters never leaves that unit (and the units above it). CRBP
propagates these per-unit derivatives forward in time, causally, with no stored history:
for the local cell ``∂h_{i,t}/∂w = φ'(a_{i,t}) (w_ii ∂h_{i,t-1}/∂w + ∂a_{i,t}/∂w|direct)``,
which is exactly RTRL restricted to the entries the parameters can ever reach — the
closure of SnAp's pattern, here small — so the gradient is *exact*. It is computed by the
sparse machinery of :mod:`.snap` (one jvp for the diagonal of D, one vjp for I, an
elementwise update: per step the cost of a few forward steps, O(n·n_in) for one layer).

Campolucci et al. derive CRBP for multilayer networks of IIR-filter synapses; the
activation-feedback cell here is their simplest member (first-order local feedback).
"""
from __future__ import annotations

from typing import Optional

from .base import register
from .online import OnlineAlgorithm, Sensitivity, StepFunction
from .snap import SparseSensitivity, probe_patterns, snap_pattern


@register
class CRBP(OnlineAlgorithm):
    """Exact online gradient of a locally recurrent network; see the module docstring."""

    name = "crbp"

    @classmethod
    def refusal(cls, spec, model, options) -> Optional[str]:
        if spec.aligned and model.cell != "local":  # CRBP is exact for this cell only
            return (f"crbp needs the locally recurrent cell, not '{model.cell}': use "
                    f"--cell local (or --algorithm rtrl for any cell)")
        return super().refusal(spec, model, options)

    def make_sensitivity(self, fn: StepFunction) -> Sensitivity:
        D_nz, I_nz = probe_patterns(fn)
        return SparseSensitivity(fn, snap_pattern(D_nz, I_nz, None), D_nz)

r"""What a forecaster's outputs mean: a point, a Gaussian, or quantiles (``task.head``).

The model emits k numbers per predicted value (M values per window: horizon steps times
predicted columns), laid out value-major: out (N, M·k) -> (N, M, k).

``point`` (k = 1): ŷ = o; the loss is the MSE.

``gaussian`` (k = 2): μ = o_0, σ = softplus(o_1) + 1e-4; the loss is the mean negative
log-likelihood  log σ + (y - μ)² / (2σ²) + log(2π)/2  (DeepAR's Gaussian likelihood,
Salinas et al. 2020). Its quantile q is μ + σ Φ⁻¹(q).

``quantile`` (k = Q): one output per level q_j (0.5 among them); the loss is the mean
pinball loss  max(q (y - ŷ_q), (q - 1)(y - ŷ_q))  (Koenker & Bassett 1978; MQ-RNN, Wen
et al. 2017). Predicted quantiles are sorted before use, so they never cross
(monotone rearrangement, Chernozhukov et al. 2010).

Every head answers :meth:`Head.levels`: the predicted quantiles {q: (N, M)} in the
model's units, 0.5 the point forecast and the outermost pair the prediction interval.
Quantiles are values, so the task maps each back through its window normalisation and
scaler exactly like a point forecast (affine maps with positive scale keep quantiles).
:func:`interval_scores` scores them in the data's units: coverage, width, pinball loss and
CRPS (Gaussian: closed form, Gneiting & Raftery 2007; quantiles: twice the mean pinball
loss over the levels, the usual discrete approximation).
"""
from __future__ import annotations

import math
from statistics import NormalDist
from typing import Dict, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.func import vmap

from .base import mse

HEADS = ("point", "gaussian", "quantile")
MIN_SIGMA = 1e-4  # scaled units: keeps the Gaussian likelihood finite on a perfect fit


class Head:
    """A point forecast; the base of the probabilistic heads."""

    name = "point"
    size = 1  # outputs per predicted value

    def split(self, out: Tensor) -> Tensor:
        """(N, M·k) -> (N, M, k)."""
        return out.reshape(out.shape[0], -1, self.size)

    def loss(self, out: Tensor, y: Tensor) -> Tensor:
        """out (N, M·k), y (N, M) -> scalar."""
        return mse(out, y)

    def levels(self, out: Tensor) -> Dict[float, Tensor]:
        """The predicted quantiles {q: (N, M)}, always with 0.5 (the point forecast)."""
        return {0.5: out}

    def population_scores(self, out: Tensor, y: Tensor, tolerance: float) -> Tuple[Tensor, Tensor]:
        """P networks' outputs at once (population methods): out (P, N, M·k), y (N, M) ->
        (losses (P,), windows whose point forecast is within ``tolerance`` at every value
        (P,)). A point forecast's: plain ops over (P, N, M); under vmap these cost a tenth of
        a GA generation (P = 50, 16 units). The count compares in place, into the outputs'
        dtype (1 or 0): a comparison into a bool tensor took 5x as long here (70 us for 39,000
        values), and amax over one output is skipped (55 us)."""
        err = out - y
        loss = torch.square(err).mean((1, 2))
        worst = err.abs_() if err.shape[2] == 1 else err.abs_().amax(2, keepdim=True)  # (P, N, 1)
        return loss, worst[..., 0].le_(tolerance).sum(1, dtype=torch.float64)  # exact counts at any N

    @property
    def interval(self) -> float:
        """The central prediction interval's nominal coverage (0: no interval)."""
        return 0.0


class _Distribution(Head):
    """A head whose k outputs per value parametrise a distribution."""

    def population_scores(self, out: Tensor, y: Tensor, tolerance: float) -> Tuple[Tensor, Tensor]:
        """:meth:`Head.population_scores` by vmap of this head's own loss and levels."""
        def one(o: Tensor):
            return self.loss(o, y), ((self.levels(o)[0.5] - y).abs().amax(1) <= tolerance).sum()
        return vmap(one)(out)


class GaussianHead(_Distribution):
    name, size = "gaussian", 2

    def __init__(self, interval: float):
        self.level = interval
        self.z = NormalDist().inv_cdf((1 + interval) / 2)

    def _moments(self, out: Tensor):
        o = self.split(out)
        return o[..., 0], F.softplus(o[..., 1]) + MIN_SIGMA

    def loss(self, out: Tensor, y: Tensor) -> Tensor:
        mu, sigma = self._moments(out)
        return (torch.log(sigma) + 0.5 * ((y - mu) / sigma) ** 2).mean() + 0.5 * math.log(2 * math.pi)

    def levels(self, out: Tensor) -> Dict[float, Tensor]:
        mu, sigma = self._moments(out)
        lo = round((1 - self.level) / 2, 12)
        return {lo: mu - self.z * sigma, 0.5: mu, round(1 - lo, 12): mu + self.z * sigma}

    @property
    def interval(self) -> float:
        return self.level


class QuantileHead(_Distribution):
    name = "quantile"

    def __init__(self, quantiles: Sequence[float]):
        self.quantiles = sorted(quantiles)
        self.size = len(self.quantiles)

    def loss(self, out: Tensor, y: Tensor) -> Tensor:
        q = torch.as_tensor(self.quantiles, dtype=out.dtype, device=out.device)  # (Q,)
        err = y[..., None] - self.split(out)  # (N, M, Q)
        return torch.maximum(q * err, (q - 1) * err).mean()

    def levels(self, out: Tensor) -> Dict[float, Tensor]:
        values = torch.sort(self.split(out), dim=-1).values  # no crossing
        return {q: values[..., j] for j, q in enumerate(self.quantiles)}

    @property
    def interval(self) -> float:
        return self.quantiles[-1] - self.quantiles[0]


def make_head(name: str, interval: float, quantiles: Sequence[float]) -> Head:
    """The head ``name`` (one of :data:`HEADS`); quantiles default to the interval's ends
    and the median."""
    if name == "gaussian":
        return GaussianHead(interval)
    if name == "quantile":
        levels = quantiles or ((1 - interval) / 2, 0.5, (1 + interval) / 2)
        return QuantileHead([round(q, 12) for q in levels])  # 0.1, not 0.09999999999999998
    return Head()


def interval_scores(levels: Dict[float, np.ndarray], truth: np.ndarray, head: Head) -> Dict[str, float]:
    """coverage, width, pinball and crps of quantile forecasts {q: (N, H, C)} against truth
    (N, H, C), all in the data's units; {} for a point head."""
    if head.interval == 0:
        return {}
    qs = sorted(levels)
    lo, hi = levels[qs[0]], levels[qs[-1]]
    pinball = np.mean([np.mean(np.maximum(q * (truth - levels[q]), (q - 1) * (truth - levels[q]))) for q in qs])
    out = {"coverage": float(np.mean((truth >= lo) & (truth <= hi))),
           "width": float(np.mean(hi - lo)), "pinball": float(pinball)}
    if isinstance(head, GaussianHead):
        mu, sigma = levels[0.5], np.maximum((hi - lo) / (2 * head.z), 1e-300)
        z = (truth - mu) / sigma
        pdf = np.exp(-0.5 * z ** 2) / math.sqrt(2 * math.pi)
        cdf = 0.5 * (1 + _erf(z / math.sqrt(2)))
        out["crps"] = float(np.mean(sigma * (z * (2 * cdf - 1) + 2 * pdf - 1 / math.sqrt(math.pi))))
    else:
        out["crps"] = 2.0 * float(pinball)
    return out


def _erf(x: np.ndarray) -> np.ndarray:
    return torch.special.erf(torch.as_tensor(x, dtype=torch.float64)).numpy()

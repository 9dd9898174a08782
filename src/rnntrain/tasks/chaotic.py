r"""Chaotic and benchmark series: Mackey-Glass, Lorenz, NARMA-10. Seeded, float64 (T, C).

Each generator states its equation, its integration method and its step; the built-in
series of :func:`rnntrain.tasks.series.builtin_series` ("mackey-glass",
"mackey-glass-30", "lorenz", "narma10") call these with their defaults.
"""
from __future__ import annotations

import math
from typing import Tuple

import numpy as np

from ..config.schema import check


def mackey_glass(length: int, tau: float = 17.0, a: float = 0.2, b: float = 0.1, n: float = 10.0,
                 x0: float = 1.2, h: float = 0.1, sample: float = 1.0, seed: int = 0) -> np.ndarray:
    r"""Mackey & Glass (1977), "Oscillation and chaos in physiological control systems":

    .. math::  \dot x(t) = \frac{a\, x(t-\tau)}{1 + x(t-\tau)^n} - b\, x(t)

    integrated by classic 4th-order Runge-Kutta with step ``h`` (0.1; ``tau/h`` must be a
    whole number of steps), the delayed term at the half step taken as the mean of its two
    grid neighbours (linear interpolation, exact to O(h^2)), and sampled every ``sample``
    time units (1, as in Jaeger 2001 and reservoirpy). The history on [-tau, 0) is
    ``x0 + 0.2 (U - 0.5)``, U ~ U(0, 1) from ``numpy.random.default_rng(seed)``; x(0) = x0.
    Chaotic for tau > 16.8; tau = 17 (dimension ~2.1) and tau = 30 (~3.6) are the usual
    benchmarks. Returns (length, 1): row i is x(i * sample).
    """
    check(length > 0, f"mackey_glass length must be > 0, got {length}")
    d = tau / h
    check(abs(d - round(d)) < 1e-9 and d >= 1, f"tau / h must be a whole number >= 1, got {tau}/{h}")
    every = sample / h
    check(abs(every - round(every)) < 1e-9 and every >= 1,
          f"sample / h must be a whole number >= 1, got {sample}/{h}")
    d, every = int(round(d)), int(round(every))
    rng = np.random.default_rng(seed)
    hist = list(x0 + 0.2 * (rng.random(d) - 0.5))  # x(-tau) .. x(-h)
    x = float(x0)
    buf = hist + [x]  # buf[-1 - d] = x(t - tau)
    out = np.empty(length)
    f = lambda xt, xd: a * xd / (1.0 + xd ** n) - b * xt
    total = (length - 1) * every
    out[0] = x
    for i in range(total):
        xd0, xd1 = buf[-1 - d], buf[-d]  # x(t - tau), x(t + h - tau)
        xdm = 0.5 * (xd0 + xd1)
        k1 = f(x, xd0)
        k2 = f(x + 0.5 * h * k1, xdm)
        k3 = f(x + 0.5 * h * k2, xdm)
        k4 = f(x + h * k3, xd1)
        x = x + h / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)
        buf.append(x)
        if len(buf) > 2 * d + 2:
            del buf[:d]
        if (i + 1) % every == 0:
            out[(i + 1) // every] = x
    return out[:, None]


def lorenz(length: int, sigma: float = 10.0, rho: float = 28.0, beta: float = 8.0 / 3.0,
           x0: Tuple[float, float, float] = (1.0, 1.0, 1.0), h: float = 0.01,
           sample: float = 0.03) -> np.ndarray:
    r"""Lorenz (1963), "Deterministic nonperiodic flow":

    .. math::  \dot x = \sigma (y - x),\quad \dot y = x (\rho - z) - y,\quad \dot z = x y - \beta z

    by classic RK4 with step ``h`` (0.01), sampled every ``sample`` (0.03, reservoirpy's
    step) time units, from ``x0``. Deterministic (no seed). Returns (length, 3): x, y, z.
    """
    check(length > 0, f"lorenz length must be > 0, got {length}")
    every = sample / h
    check(abs(every - round(every)) < 1e-9 and every >= 1,
          f"sample / h must be a whole number >= 1, got {sample}/{h}")
    every = int(round(every))

    def f(x, y, z):
        return sigma * (y - x), x * (rho - z) - y, x * y - beta * z

    out = np.empty((length, 3))
    x, y, z = map(float, x0)
    for i in range(length):
        out[i] = (x, y, z)
        for _ in range(every):
            a1, b1, c1 = f(x, y, z)
            a2, b2, c2 = f(x + h / 2 * a1, y + h / 2 * b1, z + h / 2 * c1)
            a3, b3, c3 = f(x + h / 2 * a2, y + h / 2 * b2, z + h / 2 * c2)
            a4, b4, c4 = f(x + h * a3, y + h * b3, z + h * c3)
            x += h / 6 * (a1 + 2 * a2 + 2 * a3 + a4)
            y += h / 6 * (b1 + 2 * b2 + 2 * b3 + b4)
            z += h / 6 * (c1 + 2 * c2 + 2 * c3 + c4)
    return out


def narma10(length: int, seed: int = 0) -> np.ndarray:
    r"""NARMA-10 (Atiya & Parlos 2000, "New results on recurrent network training"):

    .. math::  y_{t+1} = 0.3\, y_t + 0.05\, y_t \sum_{i=0}^{9} y_{t-i} + 1.5\, u_{t-9} u_t + 0.1

    with u_t ~ U(0, 0.5) i.i.d. from ``numpy.random.default_rng(seed)`` and y_t = 0 for
    t < 10. Returns (length, 2): columns u (the input) and y (the target).
    """
    check(length > 0, f"narma10 length must be > 0, got {length}")
    u = np.random.default_rng(seed).uniform(0.0, 0.5, length)
    y = np.zeros(length)
    for t in range(9, length - 1):
        y[t + 1] = 0.3 * y[t] + 0.05 * y[t] * y[t - 9:t + 1].sum() + 1.5 * u[t - 9] * u[t] + 0.1
    return np.stack([u, y], axis=1)


def nrmse(pred: np.ndarray, truth: np.ndarray) -> float:
    """sqrt(mean((pred - truth)^2) / var(truth)): Jaeger's normalised RMSE."""
    return float(math.sqrt(np.mean((pred - truth) ** 2) / np.var(truth)))

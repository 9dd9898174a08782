"""Chaotic and benchmark series: known properties, seeding, and reservoirpy's generators."""
from __future__ import annotations

import numpy as np
import pytest

from rnntrain.tasks.chaotic import lorenz, mackey_glass, narma10
from rnntrain.tasks.series import BUILTIN_SERIES, builtin_series


def test_mackey_glass_tau17_has_its_known_statistics():
    x = mackey_glass(6000, seed=0)[1000:, 0]  # transient dropped
    # the tau = 17 attractor: mean about 0.92, std about 0.23, within [0.4, 1.35]
    assert x.mean() == pytest.approx(0.92, abs=0.02)
    assert x.std() == pytest.approx(0.23, abs=0.02)
    assert 0.35 < x.min() and x.max() < 1.40


def test_mackey_glass_is_seeded_and_tau30_differs():
    assert np.array_equal(mackey_glass(300, seed=1), mackey_glass(300, seed=1))
    assert not np.array_equal(mackey_glass(300, seed=1), mackey_glass(300, seed=2))
    assert not np.allclose(mackey_glass(600, tau=30.0)[300:], mackey_glass(600)[300:], atol=0.05)


def test_mackey_glass_matches_reservoirpys_statistics():
    rpy = pytest.importorskip("reservoirpy.datasets")
    ours = mackey_glass(6000, seed=0)[1000:, 0]
    theirs = rpy.mackey_glass(6000, seed=0)[1000:, 0]  # RK4 with h = 1 (delay held per step)
    assert ours.mean() == pytest.approx(theirs.mean(), abs=0.02)
    assert ours.std() == pytest.approx(theirs.std(), abs=0.02)


def test_lorenz_stays_on_its_attractor():
    x = lorenz(20000)[2000:]
    assert x[:, 2].mean() == pytest.approx(23.5, abs=1.0)  # mean z of the rho = 28 attractor
    assert abs(x[:, 0].mean()) < 1.5 and np.abs(x[:, 0]).max() < 21  # symmetric wings, |x| < 20
    assert x[:, 2].min() > 0


def test_lorenz_matches_reservoirpys_statistics():
    rpy = pytest.importorskip("reservoirpy.datasets")
    ours, theirs = lorenz(20000)[2000:], rpy.lorenz(20000)[2000:]  # same x0, sampling step 0.03
    assert np.allclose(ours.mean(0)[2], theirs.mean(0)[2], atol=1.0)  # mean z
    assert np.allclose(ours.std(0), theirs.std(0), rtol=0.1)


def test_narma10_satisfies_its_recurrence():
    s = narma10(500, seed=0)
    u, y = s[:, 0], s[:, 1]
    t = np.arange(9, 499)
    rhs = 0.3 * y[t] + 0.05 * y[t] * np.array([y[i - 9:i + 1].sum() for i in t]) + 1.5 * u[t - 9] * u[t] + 0.1
    assert np.allclose(y[t + 1], rhs, atol=1e-15)
    assert 0 <= u.min() and u.max() <= 0.5 and 0 < y[20:].min() and y.max() < 1.0


@pytest.mark.parametrize("name", ["mackey-glass", "mackey-glass-30", "lorenz", "narma10"])
def test_chaotic_series_are_built_in(name):
    assert name in BUILTIN_SERIES
    s = builtin_series(name, 200, seed=0)
    assert s.values.shape[0] == 200 and np.isfinite(s.values).all()

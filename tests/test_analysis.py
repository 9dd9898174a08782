"""Looking inside: gradient flow and learned dynamics, checked against known answers.

Every Jacobian comes from a step function by torch.func; the generic-step tests use
closed-form maps, the model tests go through the cells' own single steps.
"""
from __future__ import annotations

import math

import pytest
import torch

import rnntrain
from rnntrain.analysis import (classify, classify_behaviour, find_fixed_points, gradient_flow,
                               lyapunov_spectrum, model_gradient_flow, model_step)
from rnntrain.analysis.step import no_input, trajectory
from rnntrain.models import ModelConfig, build_model
from rnntrain.tasks import TaskSpec

F64 = torch.float64


def orthogonal(D, seed=0):
    q, _ = torch.linalg.qr(torch.randn(D, D, dtype=F64, generator=torch.Generator().manual_seed(seed)))
    return q


def rotation(period):
    a = 2 * math.pi / period
    return torch.tensor([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]], dtype=F64)


def elman(cell, W, *, input_size=1, dtype=F64):
    """A one-layer model whose recurrent matrix is W, no input weights, no biases."""
    H = W.shape[0]
    model = build_model(ModelConfig(cell=cell, hidden=H), TaskSpec(input_size, 1), dtype=dtype)
    with torch.no_grad():
        for name, p in model.rnn.named_parameters():
            p.zero_()
        model.rnn.weight_hh_l0.copy_(W)
    return model


@pytest.mark.parametrize("rho", [0.8, 1.0, 1.1])
def test_linear_network_jacobian_products_are_rho_to_the_lag(rho):
    # h_t = ρQ h_{t-1}: ∂h_T/∂h_k = (ρQ)^(T-k), whose singular values are all ρ^(T-k).
    W = rho * orthogonal(12)
    flow = gradient_flow(lambda h, x: W @ h, torch.randn(3, 12, dtype=F64), torch.zeros(3, 40, 0, dtype=F64))
    expected = torch.arange(41, dtype=F64) * math.log(rho)
    assert torch.allclose(flow.log_sigma.double(), expected, atol=1e-5)  # float32 storage
    assert flow.rate == pytest.approx(rho, rel=1e-9)
    assert flow.regime == {0.8: "vanishing", 1.0: "neutral", 1.1: "exploding"}[rho]


def test_relu_network_in_its_positive_regime_is_the_linear_network():
    # ReLU cell, W = ρ·P (P a permutation: orthogonal and non-negative), positive state:
    # the step is linear, so σ_max(∂h_T/∂h_k) = ρ^(T-k) through the model adapter too.
    P = torch.eye(6, dtype=F64)[torch.tensor([1, 2, 3, 4, 5, 0])]
    ms = model_step(elman("rnn-relu", 0.9 * P))
    flow = gradient_flow(ms, torch.rand(2, 6, dtype=F64) + 0.5, torch.zeros(2, 30, 1, dtype=F64))
    assert torch.allclose(flow.log_sigma.double(), torch.arange(31, dtype=F64) * math.log(0.9), atol=1e-6)


@pytest.mark.parametrize("cell", ["rnn", "rnn-relu", "lstm", "gru"])
def test_loss_gradient_norms_equal_autograd_through_the_fused_model(cell):
    # ‖∂L/∂h_0‖ from the analysis equals the gradient of the fused model's loss with
    # respect to its initial state (LSTM: h and c), to float64 rounding.
    torch.manual_seed(0)
    model = build_model(ModelConfig(cell=cell, hidden=5, layers=2), TaskSpec(3, 2, per_step=True), dtype=F64)
    x, y = torch.randn(4, 9, 3, dtype=F64), torch.randn(4, 9, 2, dtype=F64)
    loss_fn = torch.nn.functional.mse_loss
    flow = model_gradient_flow(model, x, y, loss_fn)
    h0 = model.rnn.initial_state(4, dtype=F64)
    h0 = tuple(h.requires_grad_() for h in h0) if isinstance(h0, tuple) else h0.requires_grad_()
    grads = torch.autograd.grad(loss_fn(model(x, h0)[0], y), h0)
    assert float(flow.grad_norms[0]) == pytest.approx(float(torch.cat([g.flatten() for g in grads]).norm()), rel=1e-9)
    assert flow.grad_norms.shape == (10,) and flow.log_sigma.shape == (10,)


def test_contracting_network_has_one_stable_fixed_point():
    # tanh(0.5 Q h + b): a contraction (Lipschitz 0.5), so exactly one fixed point, stable,
    # with every Jacobian eigenvalue inside the circle of radius 0.5.
    W, b = 0.5 * orthogonal(10), torch.linspace(-0.5, 0.5, 10, dtype=F64)
    step = lambda h, x: torch.tanh(W @ h + b)
    points = find_fixed_points(step, no_input(F64), 3 * torch.randn(40, 10, dtype=F64))
    assert len(points) == 1
    p = points[0]
    assert p.kind == "stable" and p.fixed and p.q < 1e-20
    assert p.spectral_radius <= 0.5 + 1e-9
    assert torch.allclose(step(p.state, None), p.state, atol=1e-10)


def test_fixed_points_of_a_bistable_network_are_two_stable_and_one_saddle():
    # Two units with self-excitation 2 and mutual inhibition: tanh(2h) has fixed points at 0
    # (slope 2: unstable direction) and ±0.957 (stable); the model adapter finds them all.
    W = torch.tensor([[2.0, 0.0], [0.0, 0.5]], dtype=F64)
    ms = model_step(elman("rnn", W))
    points = find_fixed_points(ms, torch.zeros(1, dtype=F64), torch.randn(50, 2, dtype=F64))
    kinds = sorted(p.kind for p in points)
    assert kinds == ["saddle", "stable", "stable"]
    stable = sorted(float(p.state[0]) for p in points if p.kind == "stable")
    assert stable == pytest.approx([-0.957504, 0.957504], abs=1e-5)  # h = tanh(2h)


def test_eigenvalue_classification():
    assert classify(torch.tensor([0.5, -0.9])) == "stable"
    assert classify(torch.tensor([1.5, 0.2])) == "saddle"
    assert classify(torch.tensor([1.5, -2.0])) == "unstable"
    assert classify(torch.tensor([1.0, 0.3])) == "marginal"


@pytest.mark.parametrize("period", [5, 7, 12])
def test_rotation_oscillates_with_the_rotation_period(period):
    # h -> R h with R a rotation by 2π/p: every orbit closes after exactly p steps.
    b = classify_behaviour(lambda h, x: rotation(period) @ h, torch.tensor([1.0, 0.0], dtype=F64),
                           no_input(F64), transient=100, window=200, lyapunov_steps=200)
    assert (b.kind, b.period) == ("periodic", period)
    assert abs(b.largest_lyapunov) < 1e-9  # rotation: neutral, nothing grows or shrinks


@pytest.mark.parametrize("period", [4, 8])
def test_tanh_network_with_rotation_weights_oscillates_with_its_period(period):
    # W = 1.5·R: the origin is unstable (|μ| = 1.5) and the saturating tanh stops the
    # growth on a cycle that locks to the rotation: period p, a stable cycle (λ_1 < 0).
    model = elman("rnn", 1.5 * rotation(period))
    b = classify_behaviour(model_step(model), torch.tensor([0.3, 0.0], dtype=F64),
                           torch.zeros(1, dtype=F64), transient=1000, window=200)
    assert (b.kind, b.period) == ("periodic", period)
    assert b.largest_lyapunov < -1e-3


@pytest.mark.parametrize("gain, sign", [(0.5, -1), (0.9, -1), (3.0, 1)])
def test_random_tanh_network_is_chaotic_only_for_gain_clearly_above_one(gain, sign):
    # Sompolinsky, Crisanti & Sommers (1988): W_ij ~ N(0, g²/N); λ_1 < 0 below g = 1, > 0
    # above. N = 100, 1500 steps: λ_1 ≈ -0.64 (g 0.5), -0.05 (g 0.9), +0.28 (g 3), ±0.02.
    N = 100
    W = torch.randn(N, N, dtype=F64, generator=torch.Generator().manual_seed(1)) * gain / math.sqrt(N)
    step = lambda h, x: torch.tanh(W @ h)
    spec = lyapunov_spectrum(step, torch.randn(N, dtype=F64, generator=torch.Generator().manual_seed(2)),
                             no_input(F64), 1500, transient=200, k=3)
    assert sign * spec.largest > 0.02
    assert spec.exponents[0] >= spec.exponents[1] >= spec.exponents[2]
    if gain == 3.0:
        b = classify_behaviour(step, torch.randn(N, dtype=F64, generator=torch.Generator().manual_seed(2)),
                               no_input(F64), transient=200, window=200, lyapunov_steps=500)
        assert b.kind == "chaotic"


def test_lyapunov_spectrum_of_a_linear_map_is_its_log_singular_values():
    # For W = diag(s) Q with Q orthogonal... simplest exact case: W diagonal, exponents ln|w_ii|.
    w = torch.tensor([1.2, 0.9, -0.5, 0.1], dtype=F64)
    spec = lyapunov_spectrum(lambda h, x: w * h, torch.ones(4, dtype=F64), no_input(F64), 200, transient=0)
    assert torch.allclose(spec.exponents, torch.log(w.abs()).sort(descending=True).values, atol=1e-12)


def test_step_function_flattens_lstm_state_as_h_then_c():
    torch.manual_seed(0)
    model = build_model(ModelConfig(cell="lstm", hidden=3, layers=2), TaskSpec(2, 1), dtype=F64)
    ms = model_step(model)
    x = torch.randn(5, 7, 2, dtype=F64)
    traj = trajectory(ms, ms.zero_state(5), x)  # (5, 8, 12)
    _, (h, c) = model(x)
    assert ms.dim == 12
    assert torch.allclose(traj[:, -1], ms.flatten((h, c)), atol=1e-12)
    assert torch.allclose(ms.part(traj[:, -1], 1, 1), c[1], atol=1e-12)


def test_lstm_trained_on_anbn_has_a_cell_state_direction_that_counts():
    # Weiss, Goldberg & Yahav (2018): an LSTM learns aⁿbⁿ by counting in its cell state.
    # After training (n <= 8), one cell-state unit tracks #a - #b along strings up to n = 12
    # (never seen): |correlation| > 0.95 over every step of every string.
    config = rnntrain.load_config(base={
        "task.kind": "language", "task.max_n": 8, "task.test_max_n": 12, "task.train_size": 256,
        "model.cell": "lstm", "model.hidden": 4, "optim.lr": 0.03, "train.epochs": 40,
        "train.batch_size": 16, "train.restore_best": False})
    result = rnntrain.train(config)
    task, model = result.task, result.model
    assert result.summary["metrics"]["test"]["accuracy"] >= 0.9
    ms = model_step(model)
    strings = [task.language.string(n) for n in range(1, 13)]
    cells, counts = [], []
    for s in strings:
        x, _ = task.encode([s])
        with torch.no_grad():
            traj = trajectory(ms, ms.zero_state(1), ms.encode(x))[0, 1:len(s) + 2]  # after ^ s $
        cells.append(ms.part(traj, 1))  # (len+1, H) cell state
        prefix = "" + s
        counts += [prefix[:t].count("a") - prefix[:t].count("b") for t in range(len(s) + 1)]
    C, k = torch.cat(cells).double(), torch.tensor(counts, dtype=F64)
    Cc, kc = C - C.mean(0), k - k.mean()
    corr = (Cc * kc[:, None]).sum(0) / (Cc.norm(dim=0) * kc.norm())
    assert float(corr.abs().max()) > 0.95, corr


def test_a_state_resting_on_an_unstable_fixed_point_is_nudged_to_the_attractor_its_exponent_describes():
    # h -> tanh(2h): 0 is a fixed point with slope 2 (unstable); +-0.957 attract (slope 0.17)
    step = lambda h, u: torch.tanh(2 * h)
    b = classify_behaviour(step, torch.zeros(1, dtype=torch.float64), torch.zeros(0, dtype=torch.float64))
    assert b.kind == "point attractor"
    assert abs(float(b.trajectory[-1])) == pytest.approx(0.9575, abs=1e-3)
    assert b.largest_lyapunov == pytest.approx(math.log(2 * (1 - 0.95750 ** 2)), abs=1e-2)  # < 0

"""Echo state networks: the reservoir cell, the closed-form and online readouts, closed-loop
generation, Jaeger's Mackey-Glass protocol, and the run-directory / CLI round trip."""
from __future__ import annotations

import time

import numpy as np
import pytest
import torch

import rnntrain
from rnntrain.cli.main import main as cli
from rnntrain.core.cells import reservoir_cell
from rnntrain.errors import UserError
from rnntrain.models import build_model
from rnntrain.models.esn import build_esn
from rnntrain.models.reservoir import ReservoirConfig, sparse_input, spectral_radius
from rnntrain.models.sequence_model import ModelConfig
from rnntrain.tasks.base import TaskSpec
from conftest import interrupt_after, weights_equal
from rnntrain.tasks.chaotic import mackey_glass

F64 = torch.float64


def esn_config(**overrides):
    base = {"task.series": "sine", "task.length": 600, "task.window": 60, "model.cell": "esn",
            "model.hidden": 100, "model.spectral_radius": 0.9, "algorithm.name": "esn",
            "algorithm.washout": 50, "algorithm.ridge": 1e-8, "dtype": "float64"}
    base.update(overrides)
    return rnntrain.load_config(base=base)


@pytest.mark.parametrize("rho", [0.5, 1.25])
def test_the_reservoir_has_the_spectral_radius_asked_for_and_is_fixed(rho):
    cfg = ModelConfig(cell="esn", hidden=200, spectral_radius=rho)
    a = build_model(cfg, TaskSpec(2, 1), generator=torch.Generator().manual_seed(3), dtype=F64)
    b = build_model(cfg, TaskSpec(2, 1), generator=torch.Generator().manual_seed(3), dtype=F64)
    w = a.rnn.weight_hh_l0
    assert spectral_radius(w) == pytest.approx(rho, rel=1e-6)
    assert (w != 0).double().mean().item() == pytest.approx(0.1, abs=0.01)  # density 0.1
    assert set(a.rnn.weight_ih_l0.unique().tolist()) <= {-1.0, 0.0, 1.0}  # +-input_scaling
    assert not any(p.requires_grad for p in a.rnn.parameters())
    assert torch.equal(w, b.rnn.weight_hh_l0)  # seeded: same seed, same reservoir


def test_input_weights_are_exactly_plus_or_minus_the_scaling_in_float64():
    w = sparse_input(200, 3, 0.3, 0.5, torch.Generator().manual_seed(0))
    assert w.dtype == torch.float64
    assert set(w.unique().tolist()) == {-0.3, 0.0, 0.3}  # 0.3 itself, not float32's 0.30000001
    assert 0.4 < (w != 0).double().mean() < 0.6 and (w > 0).sum() > 0.4 * (w != 0).sum()


def test_the_reservoir_step_is_the_leaky_tanh_equation_dense_or_sparse():
    g = torch.Generator().manual_seed(0)
    w_in, w, b = torch.randn(8, 3, generator=g, dtype=F64), torch.randn(8, 8, generator=g, dtype=F64), torch.randn(8, generator=g, dtype=F64)
    x, u, a = torch.randn(4, 8, generator=g, dtype=F64), torch.randn(4, 3, generator=g, dtype=F64), 0.3
    expected = (1 - a) * x + a * torch.tanh(u @ w_in.T + x @ w.T + b)
    cell = reservoir_cell(a)
    (dense,) = cell.step(u, (x,), w_in, w, b, None)
    (sparse,) = cell.step(u, (x,), w_in, w.to_sparse_csr(), b, None)
    assert torch.allclose(dense, expected, atol=1e-14)
    assert torch.allclose(sparse, expected, atol=1e-12)


def test_the_ridge_readout_equals_an_independent_least_squares_solution():
    cfg = esn_config(**{"model.reservoir.readout_inputs": True, "algorithm.ridge": 1e-3})
    result = rnntrain.train(cfg)
    model, task = result.model, result.task
    stream = task.stream("train")
    feats, _ = model.features(stream.inputs)
    X = np.concatenate([feats[0, 50:].numpy(), np.ones((feats.shape[1] - 50, 1))], 1)
    Y = stream.targets[0, 50:].numpy()
    # augmented least squares: [X; sqrt(λ) I (no bias row)] W = [Y; 0], by numpy's SVD solver
    reg = np.sqrt(1e-3) * np.eye(X.shape[1])[:-1]
    W = np.linalg.lstsq(np.vstack([X, reg]), np.vstack([Y, np.zeros((len(reg), 1))]), rcond=None)[0]
    lin = model.readout.linear
    assert np.allclose(lin.weight.detach().numpy(), W[:-1].T, rtol=1e-6, atol=1e-8)
    assert lin.bias.item() == pytest.approx(W[-1, 0], abs=1e-8)
    assert result.summary["rounds"] == 1 and result.summary["unit"] == "fit"


def test_closed_loop_generation_reproduces_a_sine_for_hundreds_of_steps(tmp_path):
    # a sine of period 25 steps; 300 steps free-running from the validation start
    t = np.arange(1000)
    (tmp_path / "s.csv").write_text("x\n" + "\n".join(f"{v:.12f}" for v in np.sin(2 * np.pi * t / 25)))
    rnntrain.train(esn_config(**{"task.data": str(tmp_path / "s.csv"), "task.split": [0.5, 0.5],
                                 "task.normalize": "none"}), tmp_path / "run")  # generation reads the series
    gen = rnntrain.generate(tmp_path / "run", steps=300, start="val")
    assert gen.values.shape == (300, 1)
    assert np.abs(gen.values - gen.truth).max() < 1e-3


def test_rls_readout_approaches_ridge_and_resumes_bit_for_bit(tmp_path):
    ridge = rnntrain.train(esn_config(**{"algorithm.ridge": 1e-2}))
    cfg = esn_config(**{"algorithm.solver": "rls", "algorithm.rls_delta": 1e-2, "train.epochs": 2,
                        "train.restore_best": False})
    whole = rnntrain.train(cfg, tmp_path / "whole")
    # one RLS pass from P0 = I/δ is exactly ridge with penalty δ (on the bias too): same fit
    assert whole.history[0]["val_mse"] == pytest.approx(ridge.summary["metrics"]["val"]["mse"], rel=0.2)

    with pytest.raises(KeyboardInterrupt):
        rnntrain.train(cfg, tmp_path / "cut", callbacks=[interrupt_after(1)])
    assert weights_equal(whole.model, rnntrain.resume(tmp_path / "cut").model)


def test_jaeger_protocol_in_small_reaches_nrmse84_below_1e_2_in_seconds():
    # Jaeger (2001): Mackey-Glass tau 17 squashed by tanh(x - 1); train 3000 steps (first 1000
    # states discarded), then 10 runs of 1000 teacher-forced steps and 84 free-running steps
    start = time.perf_counter()
    z = np.tanh(mackey_glass(3000 + 1 + 200 + 1084, seed=0) - 1.0)
    cfg = ReservoirConfig(leak_rate=0.5, input_scaling=0.5, input_density=1.0, bias_scaling=0.2)
    m = build_esn(200, 1.0, cfg, TaskSpec(1, 1), generator=torch.Generator().manual_seed(0), dtype=F64)
    feats, _ = m.features(torch.as_tensor(z[:3000])[None])
    X = torch.cat([feats[0, 1000:], torch.ones(2000, 1, dtype=F64)], 1)
    from rnntrain.algorithms.esn import ridge_solve
    w = ridge_solve(X.T @ X, X.T @ torch.as_tensor(z[1001:3001]), 1e-10)
    with torch.no_grad():
        m.readout.linear.weight.copy_(w[:-1].T)
        m.readout.linear.bias.copy_(w[-1])
    starts = 3001 + 20 * np.arange(10)
    out = m.generate(torch.stack([torch.as_tensor(z[s:s + 1000]) for s in starts]), 84)
    err = out[:, 83, 0].numpy() - z[starts + 1083, 0]
    nrmse84 = np.sqrt(np.mean(err ** 2) / np.var(z))
    assert nrmse84 < 1e-2, nrmse84
    assert time.perf_counter() - start < 20


def test_esn_init_gives_trained_cells_a_reservoir_start():
    cfg = ModelConfig(cell="gru", hidden=50, init="esn", spectral_radius=0.8)
    m = build_model(cfg, TaskSpec(1, 1), generator=torch.Generator().manual_seed(0), dtype=F64)
    for block in m.rnn.weight_hh_l0.split(50):  # r, z, n blocks
        assert spectral_radius(block) == pytest.approx(0.8, rel=1e-6)
        assert (block != 0).double().mean().item() == pytest.approx(0.1, abs=0.02)
    assert all(p.requires_grad for p in m.parameters())


def test_the_esn_algorithm_needs_the_esn_cell():
    with pytest.raises(UserError, match="--cell esn"):
        rnntrain.train(esn_config(**{"model.cell": "lstm"}))


def test_cli_trains_an_esn_and_generates_from_its_run_directory(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli(["train", "--series", "mackey-glass", "--cell", "esn", "--algorithm", "esn",
                "--hidden", "100", "--window", "100", "--out", str(out), "--quiet",
                "--set", "model.reservoir.leak_rate=0.3", "--set", "model.spectral_radius=1.25",
                "--set", "task.length=1500"]) == 0
    assert "closed-form readout fitted" in capsys.readouterr().out
    assert cli(["generate", str(out), "--steps", "25", "-o", str(tmp_path / "g.csv")]) == 0
    rows = (tmp_path / "g.csv").read_text().splitlines()
    assert rows[0] == "step,x" and len(rows) == 26


@pytest.mark.parametrize("leak", [0.3, 1.0])
@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
def test_in_place_state_collection_equals_the_cells_own_unroll(leak, batch, sparse):
    # collect_states is the reservoir cell's step done in place (for speed); it must stay the
    # same function as the core's unroll of the cell: bit for bit dense, to rounding with CSR.
    from rnntrain.core.recurrent import unroll_layer
    from rnntrain.models.esn import collect_states

    g = torch.Generator().manual_seed(0)
    H, F_in, L = 40, 2, 30
    w_ih, b_ih = torch.randn(H, F_in, generator=g, dtype=F64), torch.randn(H, generator=g, dtype=F64)
    w = torch.randn(H, H, generator=g, dtype=F64) * (torch.rand(H, H, generator=g) < 0.2) / 2
    x = torch.randn(L, batch, F_in, generator=g, dtype=F64)
    x0 = torch.randn(batch, H, generator=g, dtype=F64)
    ref, (ref_last,) = unroll_layer(reservoir_cell(leak), x, (x0,), w_ih, w, b_ih, None)
    states, last = collect_states(x, x0, w_ih, w.to_sparse_csr() if sparse else w, b_ih, None, leak)
    if sparse:
        assert torch.allclose(states, ref, atol=1e-14, rtol=0) and torch.allclose(last, ref_last, atol=1e-14, rtol=0)
    else:
        assert torch.equal(states, ref) and torch.equal(last, ref_last)

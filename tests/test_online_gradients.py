"""Online gradients (RTRL, SnAp, CRBP, UORO) against BPTT autograd and finite differences."""
from __future__ import annotations

import pytest
import torch

from rnntrain.algorithms.gradcheck import EXACT_TOL, gradcheck
from rnntrain.algorithms.online import ModelStep
from rnntrain.algorithms.step_function import StepFunction
from rnntrain.algorithms.snap import SparseSensitivity, probe_patterns, snap_pattern
from rnntrain.cli.main import main
from rnntrain.core import Recurrent

EXACT = [  # (algorithm, cell, layers): where the online gradient must equal BPTT's
    *[("rtrl", cell, layers) for cell in ("rnn", "rnn-relu", "lstm", "gru", "local") for layers in (1, 2)],
    # cells without the compiled kernel: the step's Jacobians by autograd on per-row weights
    *[("rtrl", cell, 1) for cell in ("ln-lstm", "ln-gru", "peephole", "ctrnn", "indrnn")], ("rtrl", "peephole", 2),
    ("snap1", "local", 1), ("snap2", "local", 1), ("snap1", "local", 2),
    ("crbp", "local", 1), ("crbp", "local", 2),
]


@pytest.mark.parametrize("algorithm,cell,layers", EXACT)
def test_exact_online_gradient_equals_bptt_and_finite_differences(algorithm, cell, layers):
    result = gradcheck(algorithm, cell, layers=layers, hidden=3, steps=6)
    assert result.ok, result.table()
    assert max(r.bptt_rel for r in result.rows) <= EXACT_TOL
    assert max(r.fd_rel for r in result.rows) <= 1e-6


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_uoro_mean_is_within_three_standard_errors_of_the_exact_gradient(cell):
    result = gradcheck("uoro", cell, hidden=3, steps=6, samples=1000)
    assert result.ok, result.table()
    # one sample is far off (a rank-one estimate): the check is not vacuous
    assert max(r.bptt_rel for r in result.rows) > 1e-3


@pytest.mark.parametrize("algorithm", ["snap1", "snap2"])
def test_snap_is_an_approximation_on_a_dense_network(algorithm):
    # SnAp-1 drops influence every step; SnAp-2 of a 1-layer dense net keeps everything
    result = gradcheck(algorithm, "rnn", hidden=4, steps=6)
    assert result.ok == (algorithm == "snap2"), result.table()
    if algorithm == "snap1":
        assert max(r.bptt_rel for r in result.rows) > 0.01


def test_snap1_stores_one_number_per_parameter_of_an_elman_network():
    fn = ModelStep(Recurrent("RNN", 5, 16, dtype=torch.float64))
    D_nz, I_nz = probe_patterns(fn)
    sens = SparseSensitivity(fn, snap_pattern(D_nz, I_nz, 1), D_nz)
    assert not sens.dense and len(sens.e_row) == fn.P == 16 * 5 + 16 * 16 + 32
    assert (sens.jvps, sens.vjps) == (1, 1)  # D's diagonal and I's entries: one product each
    assert len(sens.dst) == fn.P  # one D entry per stored entry


def test_crbp_on_the_local_cell_is_one_jvp_and_one_vjp_per_step():
    fn = ModelStep(Recurrent("LOCAL", 5, 16, dtype=torch.float64))
    D_nz, I_nz = probe_patterns(fn)
    closure = snap_pattern(D_nz, I_nz, None)
    assert torch.equal(closure, I_nz)  # nothing ever leaves a unit: SnAp-1 is exact
    sens = SparseSensitivity(fn, closure, D_nz)
    assert (sens.jvps, sens.vjps) == (1, 1)
    assert len(sens.e_row) == 16 * 5 + 16 + 32  # W_ih, diag(W_hh), biases: the off-diagonal is unused


def test_gradcheck_cli_exits_0_when_within_tolerance_and_1_otherwise(capsys):
    assert main(["gradcheck", "--algorithm", "rtrl", "--cell", "gru", "--hidden", "3", "--steps", "5"]) == 0
    assert "PASS" in capsys.readouterr().out
    assert main(["gradcheck", "--algorithm", "snap1", "--cell", "rnn", "--hidden", "3", "--steps", "5"]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "rnn.weight_hh_l0" in out


@pytest.mark.parametrize("argv,message", [
    (["--algorithm", "crbp", "--cell", "lstm"], "crbp needs the locally recurrent cell"),
    (["--algorithm", "bptt"], "gradcheck checks online gradient algorithms"),
])
def test_gradcheck_cli_names_the_fix(capsys, argv, message):
    assert main(["gradcheck", *argv]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("mode,kw", [("RNN", {}), ("RNN", {"nonlinearity": "relu"}), ("LSTM", {"num_layers": 2}),
                                     ("LSTM", {"proj_size": 3}), ("GRU", {}), ("ln_lstm", {}), ("indrnn", {}),
                                     ("local", {}), ("ctrnn", {}), ("peephole", {})],
                         ids=lambda v: v if isinstance(v, str) else "-".join(f"{k}{w}" for k, w in v.items()))
def test_the_steps_jacobians_and_products_without_torch_func_equal_torch_funcs(mode, kw):
    """ModelStep's products (plain autograd: per-stream weight copies, a backward and a double
    backward) against torch.func's jvp and vjp of the same step, and its Jacobians D and I
    against torch.func's jacrev (the generic StepFunction's), float64."""
    from torch.func import jvp, vjp
    torch.manual_seed(0)
    fn = ModelStep(Recurrent(mode, 3, 5, dtype=torch.float64, **kw))
    theta, N, K = fn.theta(), 4, 3
    s, x = torch.randn(N, fn.S, dtype=torch.float64), torch.randn(N, 3, dtype=torch.float64)
    cot, tan = torch.randn(N, K, fn.S, dtype=torch.float64), torch.randn(N, K, fn.S, dtype=torch.float64)
    want_Dt = torch.stack([jvp(lambda s_: fn(theta, s_, x), (s,), (tan[:, k],))[1] for k in range(K)], 1)
    want_cI = torch.stack([torch.stack([vjp(lambda th: fn.single(th, s[n], x[n]), theta)[1](cot[n, k])[0]
                                        for k in range(K)]) for n in range(N)])
    s_next, cI, Dt = fn.products(theta, s, x, cot, tan)
    torch.testing.assert_close(s_next, fn(theta, s, x), atol=1e-12, rtol=0)
    torch.testing.assert_close(cI, want_cI, atol=1e-12, rtol=0)
    torch.testing.assert_close(Dt, want_Dt, atol=1e-12, rtol=0)
    got, want = fn.jacobians(theta, s, x), StepFunction.jacobians(fn, theta, s, x)  # (s', D, I)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=0)

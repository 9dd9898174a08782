"""The compiled recurrent kernel (core/compiled.py, core/kernels/recurrent.cpp).

Its equations have one definition, the cells' single steps (core/cells.py): the kernel's
outputs, final states and gradients equal autograd's through those steps (the step path) to
1e-10 in float64, on ragged, bidirectional and stacked batches, and to finite differences.
torch parity (every shape, float32 and float64) is in test_core_parity.py and
test_ragged.py, which run the compiled path too. Where the kernel cannot be built, torch's
kernels run after one warning.
"""
from __future__ import annotations

import warnings

import pytest
import torch
from torch.func import functional_call, grad

from rnntrain import Recurrent
from rnntrain.core import compiled

MODES = {"rnn_tanh": ("RNN", "tanh"), "rnn_relu": ("RNN", "relu"), "lstm": ("LSTM", "tanh"),
         "gru": ("GRU", "tanh")}
LENGTHS = torch.tensor([7, 3, 0, 7, 1])  # one empty sequence, one of a single step


@pytest.fixture(autouse=True)
def _kernel_built():
    assert compiled.kernel() is not None, "the compiled kernel did not build on this machine"


def make(cell: str, dtype=torch.float64, **kw) -> Recurrent:
    mode, nonlinearity = {**MODES, "local": ("LOCAL", "tanh")}[cell]
    torch.manual_seed(0)
    return Recurrent(mode, 3, 6, nonlinearity=nonlinearity, dtype=dtype, **kw)


def loss_and_grads(rnn: Recurrent, x, hx, lengths, path: str):
    """A loss reading every output and final state with distinct weights, and its gradient
    with respect to the input, the initial state and every parameter."""
    out, hn = rnn(x, hx, lengths=lengths, path=path)
    finals = hn if isinstance(hn, tuple) else (hn,)
    w = torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)
    loss = (out * w).sum() + sum((h * h.detach().sin()).sum() for h in finals)
    inputs = [x, *(hx if isinstance(hx, tuple) else (hx,)), *rnn.parameters()]
    return [out, *finals], torch.autograd.grad(loss, inputs)


@pytest.mark.parametrize("lengths", [None, LENGTHS], ids=["full", "ragged"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("cell", list(MODES))
def test_outputs_and_gradients_equal_autograd_through_the_cells_steps(cell, bidirectional, lengths):
    rnn = make(cell, num_layers=2, bidirectional=bidirectional)
    D = 2 if bidirectional else 1
    x = torch.randn(7, 5, 3, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(2 * D, 5, 6, dtype=torch.float64, requires_grad=True)
    hx = (h0, torch.randn_like(h0).requires_grad_()) if cell == "lstm" else h0
    got, got_grads = loss_and_grads(rnn, x, hx, lengths, "compiled")
    want, want_grads = loss_and_grads(rnn, x, hx, lengths, "step")
    for a, b in zip(got + list(got_grads), want + list(want_grads)):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("cell", list(MODES))
def test_gradients_equal_finite_differences(cell):
    rnn = make(cell)
    lengths = torch.tensor([4, 2, 3])
    names, params = zip(*rnn.named_parameters())

    def f(x, *weights):
        out, hn = functional_call(rnn, dict(zip(names, weights)), (x,),
                                  {"lengths": lengths, "path": "compiled"})
        return out.sin().sum() + (hn[0] if isinstance(hn, tuple) else hn).sum()

    x = torch.randn(4, 3, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(f, (x, *params), atol=1e-7)


def test_float32_matches_torch_and_repeats_bit_for_bit():
    for cell, cls in (("rnn_tanh", torch.nn.RNN), ("gru", torch.nn.GRU), ("lstm", torch.nn.LSTM)):
        rnn = make(cell, dtype=torch.float32)
        ref = cls(3, 6)
        ref.load_state_dict(rnn.state_dict())
        x = torch.randn(50, 8, 3) * 3  # pre-activations well into the saturated range
        out, _ = rnn(x, path="compiled")
        torch.testing.assert_close(out, ref(x)[0], atol=2e-6, rtol=1e-5)
        assert torch.equal(out, rnn(x, path="compiled")[0]), cell


def test_auto_runs_the_kernel_for_the_cells_measured_faster_and_torchs_for_the_rest(monkeypatch):
    calls = []
    real = compiled.forward_compiled
    monkeypatch.setattr(compiled, "forward_compiled", lambda *a: calls.append(1) or real(*a))
    x = torch.randn(5, 2, 3)
    for cell in MODES:
        calls.clear()
        make(cell, dtype=torch.float32)(x)
        assert bool(calls) == (cell in compiled.AUTO), cell
    calls.clear()
    Recurrent("LSTM", 3, 6, proj_size=2)(x, path="auto")  # a projection: torch's kernel
    Recurrent("GRU", 3, 256)(torch.randn(5, 256, 3))  # a step of 256 x 3 x 256 gates: torch's
    rnn = make("rnn_tanh", dtype=torch.float32)
    params = dict(rnn.named_parameters())
    grad(lambda p: functional_call(rnn, p, (x,))[0].sum())(params)  # under torch.func: the step path
    assert not calls


def test_a_module_the_kernel_does_not_run_is_refused_by_name():
    with pytest.raises(ValueError, match="path='compiled' runs"):
        Recurrent("LSTM", 3, 6, proj_size=2)(torch.randn(4, 2, 3), path="compiled")
    with pytest.raises(ValueError, match="path='compiled' runs"):
        Recurrent("RNN", 3, 6, dtype=torch.float16)(torch.randn(4, 2, 3, dtype=torch.float16), path="compiled")


def test_without_a_kernel_torchs_kernels_run_after_one_warning(monkeypatch):
    monkeypatch.setattr(compiled, "_module", compiled._UNSET)
    monkeypatch.setattr(compiled, "build", lambda verbose=False: (_ for _ in ()).throw(
        OSError("error: command 'g++' not found")))
    rnn = make("gru", dtype=torch.float32)
    x = torch.randn(5, 2, 3)
    with pytest.warns(RuntimeWarning, match=r"could not be built \(error: command 'g\+\+' not found\)"):
        out, _ = rnn(x, path="compiled")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once: later calls are quiet
        torch.testing.assert_close(rnn(x)[0], out)
        torch.testing.assert_close(rnn(x, path="fused")[0], out)


def test_switched_off_by_environment(monkeypatch):
    monkeypatch.setattr(compiled, "_module", compiled._UNSET)
    monkeypatch.setenv("RNNTRAIN_KERNEL", "0")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert compiled.kernel() is None
        assert not compiled.preferred(make("rnn_tanh", dtype=torch.float32), torch.randn(2, 2, 3))


def test_float32_tanh_keeps_torchs_accuracy():
    """The kernel's float32 tanh (from exp, a series near 0) against float64's, over the whole
    range: within a few float32 ulps, relative, everywhere (an Elman layer with identity
    weights reads tanh of its input straight off)."""
    rnn = Recurrent("RNN", 1, 1, bias=False)
    with torch.no_grad():
        rnn.weight_ih_l0.fill_(1.0)
        rnn.weight_hh_l0.zero_()
    x = torch.cat([torch.linspace(-12, 12, 200001), torch.logspace(-30, 1, 1000),
                   -torch.logspace(-30, 1, 1000)]).view(1, -1, 1)  # one step, a wide batch
    got = rnn(x, path="compiled")[0].double().flatten()
    want = torch.tanh(x.double()).flatten()
    rel = ((got - want).abs() / want.abs().clamp(min=1e-38)).max().item()
    assert rel < 4 * torch.finfo(torch.float32).eps, rel


def population_of(rnn: Recurrent, P: int, shared: bool, seed: int):
    """P weight sets around ``rnn``'s ({name: (P, *shape)}) and float64 inputs (L = 7, N = 5,
    F = 3), one sequence set for all (L, N, F) or one each (L, P, N, F)."""
    g = torch.Generator().manual_seed(seed)
    weights = {n: p.detach() + 0.3 * torch.randn(P, *p.shape, dtype=p.dtype, generator=g)
               for n, p in rnn.named_parameters()}
    return weights, torch.randn(7, *(() if shared else (P,)), 5, 3, dtype=torch.float64, generator=g)


@pytest.mark.parametrize("final_only", [False, True], ids=["every_step", "final"])
@pytest.mark.parametrize("shared", [True, False], ids=["shared_data", "own_data"])
@pytest.mark.parametrize("cell", list(MODES))
def test_population_evaluation_equals_the_cells_own_recur_on_stacked_weights(cell, shared, final_only, monkeypatch):
    rnn = make(cell, num_layers=2)
    P = 5
    weights, seq = population_of(rnn, P, shared, seed=1)
    # full, ragged (the rows-first loop) and nearly full (units first, one state put back)
    for lengths in (None, LENGTHS, torch.tensor([7, 7, 6, 7, 7])):
        got = rnn.population_unroll(weights, seq, lengths, final_only=final_only)
        with monkeypatch.context() as m:
            m.setattr(compiled, "population_supported", lambda *a: False)
            want = rnn.population_unroll(weights, seq, lengths, final_only=final_only)
        assert got.shape == want.shape == (P, 5, 1 if final_only else 7, 6)
        torch.testing.assert_close(got, want, atol=1e-12, rtol=0)


@pytest.mark.parametrize("loop", ["compiled", "python"])
@pytest.mark.parametrize("shared", [True, False], ids=["shared_data", "own_data"])
@pytest.mark.parametrize("cell", list(MODES))
def test_a_bidirectional_population_is_each_network_run_by_the_module_itself(cell, shared, loop, monkeypatch):
    """Both directions of two layers, the backward one on sequences reversed within their
    lengths: every network's outputs (P, N, L, 2H) are the module's own, float64."""
    from torch.func import functional_call
    rnn = make(cell, num_layers=2, bidirectional=True)
    P = 4
    weights, seq = population_of(rnn, P, shared, seed=3)
    for lengths in (None, LENGTHS, torch.tensor([7, 7, 6, 7, 7])):
        with monkeypatch.context() as m:
            if loop == "python":
                m.setattr(compiled, "population_supported", lambda *a: False)
            got = rnn.population_unroll(weights, seq, lengths)
        assert got.shape == (P, 5, 7, 12)
        for p in range(P):
            out, _ = functional_call(rnn, {n: w[p] for n, w in weights.items()},
                                     (seq if shared else seq[:, p],), {"lengths": lengths})
            torch.testing.assert_close(got[p], out.transpose(0, 1), atol=1e-12, rtol=0)
    with pytest.raises(ValueError, match="both ends"):
        rnn.population_unroll(weights, seq, final_only=True)


@pytest.mark.parametrize("hidden", [7, 72])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("cell", list(MODES))
def test_population_blocks_cover_every_window_of_a_wide_batch(cell, dtype, hidden, monkeypatch):
    """Many windows (several blocks of SIMD vectors, the last one partly empty), 7 units (not
    a multiple of the group of 4) or 72 (a GRU's then run units first), one input: every
    window's state equals the cell's own step."""
    P, N, L = 3, 150, 9
    g = torch.Generator().manual_seed(2)
    rnn = Recurrent(MODES[cell][0], 1, hidden, nonlinearity=MODES[cell][1]).to(dtype)
    weights = {n: p.detach() + 0.3 * torch.randn(P, *p.shape, generator=g).to(dtype)
               for n, p in rnn.named_parameters()}
    seq = torch.randn(L, N, 1, generator=g).to(dtype)
    lengths = torch.full((N,), L)
    lengths[::17] = L - 2  # a few windows end early: their lanes keep their state
    for lens in (None, lengths):
        for final_only in (False, True):
            got = rnn.population_unroll(weights, seq, lens, final_only=final_only)
            with monkeypatch.context() as m:
                m.setattr(compiled, "population_supported", lambda *a: False)
                want = rnn.population_unroll(weights, seq, lens, final_only=final_only)
            tol = 1e-12 if dtype == torch.float64 else 1e-4  # float32: summation order
            torch.testing.assert_close(got, want, atol=tol, rtol=0 if dtype == torch.float64 else tol)


def test_population_evaluation_is_compiled_only_where_no_gradient_is_asked_for():
    rnn = make("rnn_tanh")
    weights = {n: p.detach().expand(3, *p.shape).clone().requires_grad_() for n, p in rnn.named_parameters()}
    seq = torch.randn(4, 2, 3, dtype=torch.float64)
    assert not compiled.population_supported(rnn, weights, seq)  # the kernel has no backward
    with torch.no_grad():
        assert compiled.population_supported(rnn, weights, seq)


def _products_both_ways(fn, s, x, cot, tan, monkeypatch):
    """ModelStep.products by the kernel and by plain autograd through the cells' steps."""
    theta = fn.theta()
    got = fn.products(theta, s, x, cot, tan)
    with monkeypatch.context() as m:
        m.setattr(compiled, "products_supported", lambda *a: False)
        want = fn.products(theta, s, x, cot, tan)
    return got, want


@pytest.mark.parametrize("layers,bias", [(1, True), (2, True), (2, False)], ids=["one", "two", "two_nobias"])
@pytest.mark.parametrize("cell", [*MODES, "local"])
def test_online_products_equal_autograds_through_the_cells_steps(cell, layers, bias, monkeypatch):
    """s', cot I and D tan of a whole stack (what UORO, SnAp and CRBP read each step), float64;
    the locally recurrent cell's off-diagonal W_hh entries get no gradient."""
    from rnntrain.algorithms.online import ModelStep
    fn = ModelStep(make(cell, num_layers=layers, bias=bias))
    assert compiled.products_supported(fn.rnn, torch.zeros(1, dtype=torch.float64))
    g = torch.Generator().manual_seed(2)
    N, K = 4, 3
    s, x = torch.randn(N, fn.S, dtype=torch.float64, generator=g), torch.randn(N, 3, dtype=torch.float64, generator=g)
    cot, tan = (torch.randn(N, K, fn.S, dtype=torch.float64, generator=g) for _ in range(2))
    got, want = _products_both_ways(fn, s, x, cot, tan, monkeypatch)
    assert [t.shape for t in got] == [(N, fn.S), (N, K, fn.P), (N, K, fn.S)]
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-10)
    if cell == "local":  # W_hh's block of cot I: its diagonal only, and that not zero
        o, H = fn.offsets["weight_hh_l0"], 6
        block = got[1][..., o:o + H * H].reshape(N, K, H, H)
        assert bool((block.diagonal(dim1=-2, dim2=-1) != 0).all())
        assert not bool((block - torch.diag_embed(block.diagonal(dim1=-2, dim2=-1))).any())


def test_online_products_in_float32_match_autograd_and_repeat_bit_for_bit(monkeypatch):
    from rnntrain.algorithms.online import ModelStep
    fn = ModelStep(make("lstm", dtype=torch.float32, num_layers=2))
    g = torch.Generator().manual_seed(3)
    s, x, cot, tan = (torch.randn(*shape, generator=g) for shape in ((3, fn.S), (3, 3), (3, 2, fn.S), (3, 2, fn.S)))
    got, want = _products_both_ways(fn, s, x, cot, tan, monkeypatch)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, atol=2e-5, rtol=1e-5)
    again = fn.products(fn.theta(), s, x, cot, tan)
    assert all(torch.equal(a, b) for a, b in zip(got, again))


def test_online_products_run_compiled_only_where_the_kernel_computes_the_same_step():
    from rnntrain.core.regularize import Noise
    s = torch.zeros(1, dtype=torch.float64)
    assert compiled.products_supported(make("gru"), s)
    assert compiled.products_supported(make("local"), s)  # an Elman step with a diagonal W_hh
    assert not compiled.products_supported(make("gru"), s.float().half())  # float16: autograd's
    assert not compiled.products_supported(make("lstm", proj_size=2), s)  # a projection
    assert not compiled.products_supported(make("gru", noise=Noise(zoneout=0.2)), s)  # zoneout's mixture
    assert not compiled.products_supported(Recurrent("ctrnn", 3, 6, dtype=torch.float64), s)  # not a kernel cell

"""The cell variants and the projection, table-driven: each is one step written once, and every
path that runs it (the module's step path, a population's batched loop, RTRL's sensitivities,
torch's fused kernel where one exists) computes the same function and the same gradient."""
from __future__ import annotations

import math

import pytest
import torch

import rnntrain
from rnntrain.algorithms.gradcheck import gradcheck
from rnntrain.core import Recurrent
from rnntrain.core.variants import ctrnn_cell, indrnn_cell, layer_norm
from rnntrain.errors import UserError
from rnntrain.models import ModelConfig


# (core cell, Recurrent options) of every variant, as the model builder makes them
VARIANTS = {
    "ln_lstm": ("ln_lstm", {}),
    "ln_gru": ("ln_gru", {}),
    "peephole": ("peephole", {}),
    "indrnn": ("indrnn", {}),
    "ctrnn-euler": (ctrnn_cell("euler", 0.5), {}),
    "ctrnn-rk4": (ctrnn_cell("rk4", 0.5), {}),
    "lstm-proj": ("lstm", {"proj_size": 2}),
}
# ModelConfig keys of the same variants (what --cell / --set give)
CONFIGS = {"ln_lstm": {"cell": "ln-lstm"}, "ln_gru": {"cell": "ln-gru"}, "peephole": {"cell": "peephole"},
           "indrnn": {"cell": "indrnn"}, "ctrnn-euler": {"cell": "ctrnn", "ct_dt": 0.5},
           "ctrnn-rk4": {"cell": "ctrnn", "ct_method": "rk4", "ct_dt": 0.5},
           "lstm-proj": {"cell": "lstm", "proj": 2}}


def make(variant, *, layers=2, bidirectional=False, seed=0, hidden=5):
    torch.manual_seed(seed)
    cell, options = VARIANTS[variant]
    return Recurrent(cell, 3, hidden, layers, batch_first=True, bidirectional=bidirectional,
                     **options).double()


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("bidirectional", [False, True], ids=["forward", "bidirectional"])
def test_gradients_equal_finite_differences_in_float64(variant, bidirectional):
    rnn = make(variant, bidirectional=bidirectional)
    x = torch.randn(3, 6, 3, dtype=torch.float64, requires_grad=True)
    lengths = torch.tensor([6, 2, 4])
    weights = tuple(rnn.parameters())

    def f(x, *ws):
        out, _ = torch.func.functional_call(rnn, dict(zip([n for n, _ in rnn.named_parameters()], ws)),
                                            (x,), {"lengths": lengths, "path": "step",
                                                   "final_state": False})
        return out

    # fast mode: central differences of v^T J u for random u, v against autograd's, per
    # input; a wrong entry of J changes that almost surely, and the full Jacobian took 115 s
    assert torch.autograd.gradcheck(f, (x, *[w.detach().requires_grad_() for w in weights]),
                                    eps=1e-6, atol=1e-7, rtol=1e-5, fast_mode=True)


@pytest.mark.parametrize("variant", CONFIGS)
def test_rtrl_gradient_equals_bptt_and_finite_differences(variant):
    """RTRL's exact sensitivities against autograd through the unrolled network (to rounding),
    and both against central differences (whose own error, ~1e-10 here, is measured against
    the largest gradient entry: a tensor whose gradient is tiny has a large relative FD error)."""
    result = gradcheck("rtrl", layers=2, **CONFIGS[variant])
    assert max(r.bptt_rel for r in result.rows) < 1e-8, result.table()
    scale = max(r.fd_abs / max(r.fd_rel, 1e-300) for r in result.rows if r.fd_rel > 0)  # max |FD grad|
    assert max(r.fd_abs for r in result.rows) < 1e-6 * scale, result.table()


@pytest.mark.parametrize("variant", VARIANTS)
def test_a_population_of_networks_computes_each_networks_own_outputs(variant):
    nets = [make(variant, layers=2, seed=s) for s in range(3)]
    stacked = {n: torch.stack([dict(m.named_parameters())[n].detach() for m in nets])
               for n, _ in nets[0].named_parameters()}
    x = torch.randn(4, 7, 3, dtype=torch.float64)
    lengths = torch.tensor([7, 3, 5, 1])
    together = nets[0].population_unroll(stacked, x.transpose(0, 1).contiguous(), lengths)  # (P, N, L, R)
    for k, net in enumerate(nets):
        alone, _ = net(x, lengths=lengths, path="step")
        torch.testing.assert_close(together[k], alone, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("bidirectional", [False, True], ids=["forward", "bidirectional"])
@pytest.mark.parametrize("batch_first", [False, True], ids=["time-major", "batch-first"])
def test_a_projected_lstm_loads_torchs_state_dict_and_gives_its_outputs_and_gradients(bidirectional, batch_first):
    torch.manual_seed(1)
    ref = torch.nn.LSTM(3, 6, 2, batch_first=batch_first, bidirectional=bidirectional, proj_size=2).double()
    ours = Recurrent("LSTM", 3, 6, 2, batch_first=batch_first, bidirectional=bidirectional, proj_size=2).double()
    assert list(ours.state_dict()) == list(ref.state_dict())
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(4, 5, 3, dtype=torch.float64)
    (y_ref, (h_ref, c_ref)), (y, (h, c)) = ref(x), ours(x)
    y_step, (h_step, c_step) = ours(x, path="step")
    for a, b in ((y, y_ref), (h, h_ref), (c, c_ref), (y_step, y_ref), (h_step, h_ref), (c_step, c_ref)):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)
    assert h.shape[-1] == 2 and c.shape[-1] == 6
    g_ref = torch.autograd.grad((y_ref ** 2).sum() + c_ref.sum(), list(ref.parameters()))
    g = torch.autograd.grad((y_step ** 2).sum() + c_step.sum(), list(ours.parameters()))
    for a, b in zip(g, g_ref):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def test_a_projected_lstm_with_lengths_gives_the_same_on_every_path():
    rnn = make("lstm-proj", bidirectional=True)
    x = torch.randn(4, 6, 3, dtype=torch.float64)
    lengths = [6, 2, 5, 1]
    fused_out, (fh, fc) = rnn(x, lengths=lengths, path="fused")
    step_out, (sh, sc) = rnn(x, lengths=lengths, path="step")
    for a, b in ((fused_out, step_out), (fh, sh), (fc, sc)):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("variant", VARIANTS)
def test_the_flat_state_is_every_layers_h_then_every_layers_c(variant):
    rnn = make(variant, layers=2)
    state = rnn.initial_state(3)
    parts = state if isinstance(state, tuple) else (state,)
    filled = tuple(torch.randn_like(p) for p in parts)
    flat = rnn.flat_state(filled if len(filled) == 2 else filled[0])
    assert flat.shape == (3, 2 * sum(rnn.state_sizes))
    back = rnn.unflat_state(flat)
    for a, b in zip(back if isinstance(back, tuple) else (back,), filled):
        assert torch.equal(a, b)
    torch.testing.assert_close(flat[:, :rnn.output_size], filled[0][0])  # layer 0's h comes first


def test_layer_normalised_cells_do_not_change_when_the_recurrent_weights_are_scaled(monkeypatch):
    """LN normalises W_hh h, so scaling W_hh by any positive factor leaves the function unchanged
    (Ba et al. 2016, sec. 5.1: invariance to weight matrix re-scaling); exact with the
    normaliser's epsilon at 0 and a non-zero initial state."""
    from rnntrain.core import variants
    monkeypatch.setattr(variants, "LN_EPS", 0.0)
    for variant in ("ln_lstm", "ln_gru"):
        rnn = make(variant, layers=1)
        x = torch.randn(2, 8, 3, dtype=torch.float64)
        h0 = rnn.initial_state(2)
        h0 = tuple(torch.randn_like(h) for h in h0) if isinstance(h0, tuple) else torch.randn_like(h0)
        before, _ = rnn(x, h0)
        with torch.no_grad():
            rnn.weight_hh_l0.mul_(7.5)
        after, _ = rnn(x, h0)
        torch.testing.assert_close(after, before, rtol=1e-12, atol=1e-12)


def test_layer_norm_is_zero_mean_unit_variance_times_its_gain():
    a = torch.randn(5, 12, dtype=torch.float64) * 3 + 2
    out = layer_norm(a, torch.ones(12, dtype=torch.float64))
    torch.testing.assert_close(out.mean(-1), torch.zeros(5, dtype=torch.float64), atol=1e-12, rtol=0)
    torch.testing.assert_close(out.var(-1, unbiased=False), torch.ones(5, dtype=torch.float64), atol=1e-4, rtol=0)
    torch.testing.assert_close(layer_norm(a, torch.full((12,), 2.0, dtype=torch.float64), torch.ones(12)),
                               2 * out + 1)


def test_a_peephole_lstm_without_peepholes_is_torchs_lstm():
    torch.manual_seed(0)
    ref = torch.nn.LSTM(3, 5, 2, batch_first=True).double()
    peep = Recurrent("peephole", 3, 5, 2, batch_first=True).double()
    state = {**ref.state_dict(), **{n: torch.zeros_like(p) for n, p in peep.named_parameters() if "weight_ch" in n}}
    peep.load_state_dict(state)
    x = torch.randn(2, 6, 3, dtype=torch.float64)
    torch.testing.assert_close(peep(x)[0], ref(x)[0], rtol=1e-12, atol=1e-12)
    with torch.no_grad():
        peep.weight_ch_l0.fill_(0.5)
    assert not torch.allclose(peep(x)[0], ref(x)[0])


def test_indrnn_keeps_its_recurrent_weights_within_the_bound_whatever_the_update():
    from rnntrain.optim import OptimConfig, Updater
    rnn = Recurrent(indrnn_cell(0.9), 2, 4, 1).double()
    assert rnn.weight_hh_l0.shape == (4,)  # one recurrent weight per unit
    assert float(rnn.weight_hh_l0.detach().abs().max()) <= 0.9
    updater = Updater(OptimConfig(name="sgd", lr=100.0, clip=0.0), rnn.parameters(), 1, model=rnn)
    x = torch.rand(5, 3, 2, dtype=torch.float64)
    for _ in range(3):
        updater.zero_grad()
        (-rnn(x)[0].sum()).backward()  # pushes u up without limit
        updater.step()
        assert float(rnn.weight_hh_l0.detach().abs().max()) <= 0.9 + 1e-15
    # the step itself clamps: a network handed weights beyond the bound computes the bounded one
    with torch.no_grad():
        rnn.weight_hh_l0.fill_(5.0)
    clamped = Recurrent(indrnn_cell(0.9), 2, 4, 1).double()
    clamped.load_state_dict(rnn.state_dict())
    with torch.no_grad():
        clamped.weight_hh_l0.fill_(0.9)
    torch.testing.assert_close(rnn(x)[0], clamped(x)[0])


def test_a_ctrnn_time_constant_shorter_than_its_step_is_capped_at_the_step():
    rnn = Recurrent(ctrnn_cell("euler", 1.0), 3, 4, 1).double()
    x = torch.randn(6, 2, 3, dtype=torch.float64)
    with torch.no_grad():
        rnn.log_tau_l0.fill_(0.0)
    at_step, _ = rnn(x)
    with torch.no_grad():
        rnn.log_tau_l0.fill_(-5.0)  # tau = 0.007 steps: resolved as tau = dt
    torch.testing.assert_close(rnn(x)[0], at_step)
    rnn.constrain_()
    assert torch.equal(rnn.log_tau_l0.detach(), torch.zeros(4, dtype=torch.float64))


def test_a_ctrnn_step_with_dt_equal_to_tau_is_the_elman_step():
    rnn = Recurrent(ctrnn_cell("euler", 1.0), 3, 4, 1, batch_first=True).double()
    elman = Recurrent("RNN", 3, 4, 1, batch_first=True).double()
    elman.load_state_dict({k: v for k, v in rnn.state_dict().items() if not k.startswith("log_tau")})
    with torch.no_grad():
        rnn.log_tau_l0.zero_()  # tau = 1 = dt: h + (tanh(...) - h) = tanh(...)
    x = torch.randn(2, 9, 3, dtype=torch.float64)
    torch.testing.assert_close(rnn(x)[0], elman(x)[0], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("method,order", [("euler", 1), ("rk4", 4)])
def test_one_step_has_the_methods_order_of_accuracy(method, order):
    """The local error of one step of length Δt is O(Δt^(order+1)) against the exact flow (400
    RK4 steps): halving Δt from 1 to 0.5 (τ = 3) divides it by about 2^(order+1)."""
    torch.manual_seed(3)
    base = Recurrent(ctrnn_cell(method, 1.0), 2, 6, 1).double()
    with torch.no_grad():
        base.log_tau_l0.fill_(math.log(3.0))
    x = torch.randn(4, 2, dtype=torch.float64)
    h0 = torch.randn(1, 4, 6, dtype=torch.float64) * 0.5

    def run(m, dt, steps):
        net = Recurrent(ctrnn_cell(m, dt), 2, 6, 1).double()
        net.load_state_dict(base.state_dict())
        h = h0
        with torch.no_grad():
            for _ in range(steps):
                h = net.step(x, h)
        return h

    err = [float((run(method, dt, 1) - run("rk4", dt / 400, 400)).abs().max()) for dt in (1.0, 0.5)]
    assert 0.85 * 2 ** (order + 1) < err[0] / err[1] < 1.15 * 2 ** (order + 1), err


def test_a_timed_ctrnn_reads_each_steps_dt_from_the_last_input_feature():
    cell = ctrnn_cell("euler", 1.0, timed=True)
    rnn = Recurrent(cell, 3, 4, 1, batch_first=True).double()
    x = torch.randn(2, 5, 3, dtype=torch.float64)
    x[..., -1] = torch.tensor([0.5, 1.0, 2.0, 0.1, 1.5], dtype=torch.float64)
    with torch.no_grad():
        rnn.log_tau_l0.copy_(torch.linspace(1.0, 2.0, 4))  # tau in [e, e^2]: every Δt/τ < 1
    out, _ = rnn(x)
    # by hand: h <- h + dt * (tanh(W x + b + W_hh h) - h) / tau, dt from the column
    w_ih, w_hh, b_ih, b_hh, log_tau = rnn.layer_weights(0)
    h = torch.zeros(2, 4, dtype=torch.float64)
    for t in range(5):
        pre = x[:, t] @ w_ih.T + b_ih + h @ w_hh.T + b_hh
        h = h + x[:, t, -1:] * (torch.tanh(pre) - h) * torch.exp(-log_tau)
        torch.testing.assert_close(out[:, t], h)
    pop = rnn.population_unroll({n: p.detach()[None] for n, p in rnn.named_parameters()},
                                x.transpose(0, 1).contiguous())
    torch.testing.assert_close(pop[0], out.detach())


@pytest.mark.parametrize("keys,message", [
    ({"cell": "gru", "proj": 2}, "--cell lstm"),
    ({"cell": "lstm", "proj": 64}, "fewer units than hidden"),
    ({"cell": "indrnn", "recurrent_max": 0}, "recurrent_max"),
    ({"cell": "ctrnn", "ct_method": "midpoint"}, "euler, rk4"),
    ({"cell": "ctrnn", "ct_dt": -1}, "ct_dt"),
    ({"cell": "ctrnn", "ct_dt": 0, "bidirectional": True}, "drop --bidirectional"),
    ({"cell": "gru", "forget_bias": 1.0}, "--cell lstm, ln-lstm, peephole"),
    ({"cell": "esn", "zoneout": 0.1}, "fixed reservoir"),
])
def test_settings_a_cell_cannot_take_are_refused_in_one_line(keys, message):
    with pytest.raises(UserError, match=message):
        ModelConfig(**keys)


def test_a_forget_bias_goes_where_each_lstm_variant_adds_it():
    from rnntrain.models.init import initialize
    for cell, holder in (("LSTM", "bias_ih"), ("peephole", "bias_ih"), ("ln_lstm", "bias_hh")):
        rnn = initialize(Recurrent(cell, 2, 3, 1), forget_bias=2.0)
        other = "bias_hh" if holder == "bias_ih" else "bias_ih"
        assert torch.equal(getattr(rnn, holder + "_l0")[3:6], torch.full((3,), 2.0))
        assert torch.equal(getattr(rnn, other + "_l0")[3:6], torch.zeros(3))


def test_structured_inits_refuse_shapes_they_cannot_fill():
    from rnntrain.models.init import initialize
    with pytest.raises(UserError, match="one recurrent weight per unit"):
        initialize(Recurrent("indrnn", 2, 3, 1), "orthogonal")
    rnn = initialize(Recurrent("indrnn", 2, 3, 1), "identity", spectral_radius=0.5)
    assert torch.equal(rnn.weight_hh_l0.detach(), torch.full((3,), 0.5))
    with pytest.raises(UserError, match="--proj"):
        initialize(Recurrent("LSTM", 2, 4, 1, proj_size=2), "orthogonal")


# ModelConfig keys of every new cell as a user sets them (--cell, --proj, --set)
USER_CELLS = {"ln-lstm": {}, "ln-gru": {}, "peephole": {}, "indrnn": {}, "ctrnn": {"model.ct_method": "rk4"},
              "lstm-proj": {"model.cell": "lstm", "model.proj": 3}}


def _small(cell, **extra):
    keys = {"model.cell": cell, **USER_CELLS[cell], "model.hidden": 6, "task.length": 200,
            "train.epochs": 2, **extra}
    return rnntrain.load_config(base=keys)


@pytest.mark.slow
@pytest.mark.parametrize("cell", USER_CELLS)
def test_every_new_cell_resumes_exactly_and_is_analysed(cell, tmp_path, capsys):
    from conftest import assert_resume_equals_uninterrupted
    from rnntrain.cli.main import main

    whole, _ = assert_resume_equals_uninterrupted(_small(cell), tmp_path, after=1)
    for what in ("gradients", "dynamics"):
        assert main(["analyze", what, str(tmp_path / "whole")]) == 0, capsys.readouterr().err
    assert main(["forecast", str(tmp_path / "whole"), "--steps", "3"]) == 0

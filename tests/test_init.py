"""Initialisation schemes: each one delivers the structure its paper asks for, on every
layer, direction and gate block, reproducibly from a generator."""
from __future__ import annotations

import pytest
import torch

from rnntrain import Recurrent
from rnntrain.errors import UserError
from rnntrain.models.init import INIT_SCHEMES, initialize

H_IN, H = 3, 5
# (mode, nonlinearity) -> gates G
CELLS = {("RNN", "tanh"): 1, ("RNN", "relu"): 1, ("LSTM", "tanh"): 4, ("GRU", "tanh"): 3}


def make(mode="LSTM", nonlinearity="tanh", dtype=torch.float32, **kw):
    kw = {"num_layers": 2, "bidirectional": True, **kw}
    return Recurrent(mode, H_IN, H, nonlinearity=nonlinearity, dtype=dtype, **kw)


def gate_blocks(rnn):
    """Every (H, H) gate block of every weight_hh (all layers and directions)."""
    blocks = [b for n, w in rnn.named_parameters() if n.startswith("weight_hh")
              for b in w.detach().split(H, dim=0)]
    assert len(blocks) == 2 * 2 * rnn.cell.gates  # layers x directions x gates
    return blocks


def gen(seed):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("mode, nonlin", list(CELLS))
def test_orthogonal_blocks_satisfy_qtq_identity(mode, nonlin, dtype):
    rnn = initialize(make(mode, nonlin, dtype), "orthogonal", generator=gen(0))
    blocks = gate_blocks(rnn)
    eye = torch.eye(H, dtype=dtype)
    for q in blocks:
        torch.testing.assert_close(q.T @ q, eye, atol=1e-5, rtol=0)
        torch.testing.assert_close(q @ q.T, eye, atol=1e-5, rtol=0)
    # independent draws, not one matrix repeated
    assert min((a - b).abs().max() for a, b in zip(blocks, blocks[1:])) > 1e-2


@pytest.mark.parametrize("mode, nonlin", list(CELLS))
def test_identity_gives_exact_identity_and_zero_biases(mode, nonlin):
    rnn = make(mode, nonlin)
    w_ih_before = rnn.weight_ih_l1_reverse.detach().clone()
    initialize(rnn, "identity")
    for block in gate_blocks(rnn):
        assert torch.equal(block, torch.eye(H))
    for name, b in rnn.named_parameters():
        if name.startswith("bias"):
            assert torch.equal(b, torch.zeros_like(b)), name
    # input weights keep a default draw: U(-1/sqrt(H), 1/sqrt(H)), not zero or identity
    w_ih = rnn.weight_ih_l1_reverse.detach()
    assert 0 < w_ih.abs().max() <= H ** -0.5 and not torch.equal(w_ih, w_ih_before)


def test_identity_scaled_by_spectral_radius():
    rnn = initialize(make("RNN", "relu"), "identity", spectral_radius=0.9)
    for block in gate_blocks(rnn):
        assert torch.equal(block, 0.9 * torch.eye(H))


def test_irnn_keeps_its_state_under_zero_input():
    # Le, Jaitly & Hinton 2015: with W_hh = I, zero biases and ReLU, h_t = relu(h_{t-1}) = h_{t-1}.
    # One layer: a second layer's input h^1_t goes through its (default) W_ih, so it moves.
    rnn = initialize(Recurrent("RNN", H_IN, H, nonlinearity="relu", dtype=torch.float64),
                     "identity", generator=gen(0))
    h0 = torch.rand(1, 4, H, dtype=torch.float64)  # non-negative: a fixed point of relu
    x = torch.zeros(20, 4, H_IN, dtype=torch.float64)
    for path in ("fused", "step"):
        out, hn = rnn(x, h0, path=path)
        assert torch.equal(hn, h0)
        assert torch.equal(out, h0[-1].expand(20, 4, H))


@pytest.mark.parametrize("rho", [0.5, 0.9, 1.0, 1.5, 3.0])
@pytest.mark.parametrize("mode, nonlin", [("RNN", "tanh"), ("LSTM", "tanh"), ("GRU", "tanh")])
def test_spectral_radius_equals_request(mode, nonlin, rho):
    rnn = initialize(make(mode, nonlin), "spectral", spectral_radius=rho, generator=gen(1))
    for block in gate_blocks(rnn):
        radius = torch.linalg.eigvals(block.double()).abs().max().item()
        assert radius == pytest.approx(rho, abs=1e-4)


@pytest.mark.parametrize("scheme", INIT_SCHEMES)
def test_same_seed_same_weights_different_seed_different(scheme):
    def weights(seed):
        torch.manual_seed(100 + seed)  # the global RNG must not matter when a generator is given
        rnn = initialize(make("GRU"), scheme, spectral_radius=0.8, generator=gen(seed))
        return {k: v.detach().clone() for k, v in rnn.state_dict().items()}

    a, b, c = weights(7), weights(7), weights(8)
    assert all(torch.equal(a[k], b[k]) for k in a)
    drawn = [k for k in a if k.startswith("weight_ih")
             or (k.startswith("weight_hh") and scheme != "identity")]  # identity's W_hh is fixed
    assert all(not torch.equal(a[k], c[k]) for k in drawn)


def test_default_matches_torch_range_and_resets_every_parameter():
    rnn = make("LSTM")
    before = {k: v.detach().clone() for k, v in rnn.named_parameters()}
    initialize(rnn, "default", generator=gen(3))
    for k, p in rnn.named_parameters():
        assert p.abs().max() <= H ** -0.5
        assert not torch.equal(p, before[k]), k


def test_unknown_scheme_names_the_choices():
    with pytest.raises(UserError, match="xavier.*default, orthogonal, identity, spectral"):
        initialize(make(), "xavier")


@pytest.mark.parametrize("rho", [-1.0, float("nan"), float("inf"), 0.0])
def test_bad_spectral_radius_is_a_user_error(rho):
    with pytest.raises(UserError, match="spectral_radius"):
        initialize(make(), "spectral", spectral_radius=rho)


# --- forget-gate bias (Gers et al. 2000; Jozefowicz et al. 2015) ---------------------------

def forget_blocks(rnn):
    """{(layer suffix): (bias_ih forget block, bias_hh forget block)} for every layer and direction."""
    params = dict(rnn.named_parameters())
    suffixes = [n[len("bias_ih"):] for n in params if n.startswith("bias_ih")]
    H_ = rnn.hidden_size
    return {s: (params["bias_ih" + s].detach()[H_:2 * H_], params["bias_hh" + s].detach()[H_:2 * H_])
            for s in suffixes}


@pytest.mark.parametrize("scheme", INIT_SCHEMES)
@pytest.mark.parametrize("b_f", [1.0, 3.0, -2.5])
def test_forget_bias_is_the_exact_effective_forget_bias_in_every_layer_and_direction(scheme, b_f):
    rnn = initialize(make("LSTM"), scheme, spectral_radius=0.9, generator=gen(4), forget_bias=b_f)
    blocks = forget_blocks(rnn)
    assert sorted(blocks) == ["_l0", "_l0_reverse", "_l1", "_l1_reverse"]
    for suffix, (b_ih, b_hh) in blocks.items():
        assert torch.equal(b_ih, torch.full((H,), b_f)), suffix
        assert torch.equal(b_hh, torch.zeros(H)), suffix
        assert torch.equal(b_ih + b_hh, torch.full((H,), b_f)), suffix  # what the gate sees


@pytest.mark.parametrize("scheme", INIT_SCHEMES)
def test_forget_bias_leaves_every_other_weight_as_the_same_seed_without_it(scheme):
    plain = initialize(make("LSTM"), scheme, spectral_radius=0.9, generator=gen(5)).state_dict()
    biased = initialize(make("LSTM"), scheme, spectral_radius=0.9, generator=gen(5),
                        forget_bias=1.0).state_dict()
    assert plain.keys() == biased.keys()
    for k in plain:
        if k.startswith("bias"):
            other = torch.cat([plain[k][:H], plain[k][2 * H:]])  # gates i, g, o
            assert torch.equal(torch.cat([biased[k][:H], biased[k][2 * H:]]), other), k
            if k.startswith("bias_ih"):  # the forget block moved (to 1, from a draw or 0)
                assert not torch.equal(biased[k][H:2 * H], plain[k][H:2 * H]), k
        else:
            assert torch.equal(biased[k], plain[k]), k


def test_forget_bias_zero_changes_nothing():
    a = initialize(make("LSTM"), "orthogonal", generator=gen(6)).state_dict()
    b = initialize(make("LSTM"), "orthogonal", generator=gen(6), forget_bias=0.0).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("mode, nonlin", [("GRU", "tanh"), ("RNN", "tanh"), ("RNN", "relu")])
def test_forget_bias_on_a_cell_without_a_forget_gate_is_a_user_error(mode, nonlin):
    with pytest.raises(UserError, match=f"forget_bias.*{mode}.*use --cell lstm"):
        initialize(make(mode, nonlin), "default", forget_bias=1.0)


def test_forget_bias_config_for_a_gru_is_a_one_line_user_error():
    import rnntrain

    with pytest.raises(UserError, match="forget_bias.*'gru'.*use --cell lstm") as err:
        rnntrain.load_config(base={"model.cell": "gru", "model.forget_bias": 1.0})
    assert "\n" not in str(err.value)


def test_forget_bias_is_honoured_through_config_and_build_model():
    import rnntrain
    from rnntrain.training.build import make_task

    config = rnntrain.load_config(
        base={"model.cell": "lstm", "model.hidden": H, "model.layers": 2, "model.bidirectional": True,
              "model.init": "orthogonal", "task.kind": "pathological", "task.problem": "adding",
              "task.variant": "hochreiter", "task.length": 20},
        overrides=["model.forget_bias=2"])  # as `--set model.forget_bias=2` gives it
    assert config.model.forget_bias == 2.0
    model = rnntrain.build_model(config.model, make_task(config).spec, generator=gen(7))
    blocks = forget_blocks(model.rnn)
    assert len(blocks) == 4
    for b_ih, b_hh in blocks.values():
        assert torch.equal(b_ih + b_hh, torch.full((H,), 2.0))

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

"""The drop-in promise of ``rnntrain.Recurrent``: torch.nn.RNN/LSTM/GRU's state_dict,
outputs, final states and gradients, on both execution paths.

Table: cells {RNN tanh, RNN relu, LSTM, GRU} x paths {fused, step} x dtypes
{float32: 1e-5, float64: 1e-10} x shapes {1 layer, 2 layers, 2 layers bidirectional,
bias False} x batch_first {False, True}. Sizes are small (H_in 3, H 5, L 6, N 4).
"""
from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.func import functional_call, jvp, vmap

from rnntrain import Recurrent

H_IN, H, L, N = 3, 5, 6, 4

# name -> (Recurrent mode, nonlinearity, torch module class)
CELLS = {
    "rnn_tanh": ("RNN", "tanh", nn.RNN),
    "rnn_relu": ("RNN", "relu", nn.RNN),
    "lstm": ("LSTM", "tanh", nn.LSTM),
    "gru": ("GRU", "tanh", nn.GRU),
}
PATHS = ("fused", "step", "compiled")
TOLS = {torch.float32: 1e-5, torch.float64: 1e-10}
SHAPES = {
    "1layer": dict(num_layers=1),
    "2layers": dict(num_layers=2),
    "2layers_bidir": dict(num_layers=2, bidirectional=True),
    "nobias": dict(num_layers=1, bias=False),
}


def make_pair(cell: str, path: str, dtype=torch.float64, seed: int = 0, **kw):
    """A torch module and a Recurrent loaded (strict) from its state_dict."""
    mode, nonlin, cls = CELLS[cell]
    torch.manual_seed(seed)
    extra = {"nonlinearity": nonlin} if mode == "RNN" else {}
    ref = cls(H_IN, H, dtype=dtype, **extra, **kw)
    ours = Recurrent(mode, H_IN, H, nonlinearity=nonlin, path=path, dtype=dtype, **kw)
    ours.load_state_dict(ref.state_dict(), strict=True)
    return ref, ours


def random_state(cell: str, layers: int, dtype, batch=(N,)):
    """Random h_0 (a tuple (h_0, c_0) for LSTM) of shape (D*layers, *batch, H)."""
    shape = (layers, *batch, H)
    h = torch.randn(shape, dtype=dtype, requires_grad=True)
    if cell == "lstm":
        return (h, torch.randn(shape, dtype=dtype, requires_grad=True))
    return h


def as_tuple(state):
    return state if isinstance(state, tuple) else (state,)


def assert_close(a, b, tol):
    torch.testing.assert_close(a, b, atol=tol, rtol=tol)


def test_state_dict_keys_and_shapes_match_torch():
    for cell, (mode, nonlin, cls) in CELLS.items():
        for kw in SHAPES.values():
            extra = {"nonlinearity": nonlin} if mode == "RNN" else {}
            ref = {k: v.shape for k, v in cls(H_IN, H, **extra, **kw).state_dict().items()}
            ours = {k: v.shape for k, v in Recurrent(mode, H_IN, H, nonlinearity=nonlin, **kw)
                    .state_dict().items()}
            assert ours == ref, (cell, kw)


@pytest.mark.parametrize("batch_first", [False, True], ids=["seq_first", "batch_first"])
@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("dtype", list(TOLS), ids=["f32", "f64"])
@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("cell", list(CELLS))
def test_outputs_states_and_gradients_equal_torch(cell, path, dtype, shape, batch_first):
    kw = dict(SHAPES[shape], batch_first=batch_first)
    tol = TOLS[dtype]
    ref, ours = make_pair(cell, path, dtype, **kw)
    D = 2 if kw.get("bidirectional") else 1
    x = torch.randn((N, L, H_IN) if batch_first else (L, N, H_IN), dtype=dtype, requires_grad=True)
    hx = random_state(cell, D * kw["num_layers"], dtype)
    out_ref, hn_ref = ref(x, hx)
    out, hn = ours(x, hx)
    assert out.shape == out_ref.shape
    assert_close(out, out_ref, tol)
    for a, b in zip(as_tuple(hn), as_tuple(hn_ref), strict=True):
        assert_close(a, b, tol)

    # a random scalar function of (output, h_n[, c_n]): same coefficients for both
    coef = [torch.randn_like(t) for t in (out_ref, *as_tuple(hn_ref))]

    def loss(o, h):
        return sum((c * t).sum() for c, t in zip(coef, (o, *as_tuple(h)), strict=True))

    wrt_ref = [*ref.parameters(), x, *as_tuple(hx)]
    wrt = [*ours.parameters(), x, *as_tuple(hx)]
    grads_ref = torch.autograd.grad(loss(out_ref, hn_ref), wrt_ref)
    grads = torch.autograd.grad(loss(out, hn), wrt)
    param_names = [n for n, _ in ours.named_parameters()]
    assert param_names == [n for n, _ in ref.named_parameters()]
    names = param_names + ["input", "h_0", "c_0"][:1 + len(as_tuple(hx))]
    for name, g, g_ref in zip(names, grads, grads_ref, strict=True):
        torch.testing.assert_close(g, g_ref, atol=tol, rtol=tol, msg=lambda m: f"d/d{name}: {m}")


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("cell", list(CELLS))
def test_default_zero_state_equals_torch(cell, path):
    ref, ours = make_pair(cell, path, num_layers=2)
    x = torch.randn(L, N, H_IN, dtype=torch.float64)
    out_ref, hn_ref = ref(x)
    out, hn = ours(x)
    assert_close(out, out_ref, 1e-10)
    for a, b in zip(as_tuple(hn), as_tuple(hn_ref), strict=True):
        assert_close(a, b, 1e-10)


@pytest.mark.parametrize("batch_first", [False, True], ids=["seq_first", "batch_first"])
@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("cell", list(CELLS))
def test_unbatched_input_equals_torch(cell, path, batch_first):
    ref, ours = make_pair(cell, path, num_layers=2, bidirectional=True, batch_first=batch_first)
    x = torch.randn(L, H_IN, dtype=torch.float64)  # (L, H_in): no batch dimension
    for hx in (None, random_state(cell, 4, torch.float64, batch=())):
        out_ref, hn_ref = ref(x, hx)
        out, hn = ours(x, hx)
        assert out.shape == out_ref.shape == (L, 2 * H)
        assert_close(out, out_ref, 1e-10)
        for a, b in zip(as_tuple(hn), as_tuple(hn_ref), strict=True):
            assert a.shape == b.shape == (4, H)
            assert_close(a, b, 1e-10)


@pytest.mark.parametrize("cell", list(CELLS))
def test_step_iterated_over_time_equals_unrolled_output(cell):
    _, ours = make_pair(cell, "fused", num_layers=2)
    x = torch.randn(L, N, H_IN, dtype=torch.float64)
    h0 = random_state(cell, 2, torch.float64)
    out, hn = ours(x, h0)
    state, outs = h0, []
    for t in range(L):
        state = ours.step(x[t], state)
        outs.append(as_tuple(state)[0][-1])  # top layer's h_t
    assert_close(torch.stack(outs), out, 1e-10)
    for a, b in zip(as_tuple(state), as_tuple(hn), strict=True):
        assert_close(a, b, 1e-10)


def test_step_refuses_bidirectional():
    rnn = Recurrent("GRU", H_IN, H, bidirectional=True)
    with pytest.raises(ValueError, match="bidirectional"):
        rnn.step(torch.randn(N, H_IN), rnn.initial_state(N))


def test_repr_reads_like_torch():
    assert repr(Recurrent("GRU", 3, 5)) == "Recurrent(GRU, 3, 5)"
    assert (repr(Recurrent("rnn", 3, 5, nonlinearity="relu"))
            == "Recurrent(RNN, 3, 5, nonlinearity='relu')")
    assert (repr(Recurrent("lstm", 3, 5, num_layers=2, bias=False, batch_first=True, dropout=0.5,
                           bidirectional=True, path="step"))
            == "Recurrent(LSTM, 3, 5, num_layers=2, bias=False, batch_first=True, dropout=0.5, "
               "bidirectional=True, path='step')")


@pytest.mark.parametrize("args, kwargs, match", [
    (("LSTM", 3, 0), {}, "hidden_size"),
    (("LSTM", 3, 5), {"num_layers": 0}, "num_layers"),
    (("TRANSFORMER", 3, 5), {}, "TRANSFORMER"),
    (("RNN", 3, 5), {"nonlinearity": "sigmoid"}, "sigmoid"),
    (("GRU", 3, 5), {"dropout": 1.5}, "1.5"),
    (("GRU", 3, 5), {"path": "fast"}, "fast"),
], ids=["hidden_size_0", "num_layers_0", "bad_mode", "bad_nonlinearity", "dropout_1.5", "bad_path"])
def test_constructor_rejects_bad_arguments(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        Recurrent(*args, **kwargs)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("cell", list(CELLS))
def test_dropout_is_identity_in_eval_mode(cell, path):
    _, plain = make_pair(cell, path, num_layers=2)
    mode, nonlin, _ = CELLS[cell]
    dropped = Recurrent(mode, H_IN, H, num_layers=2, dropout=0.5, nonlinearity=nonlin,
                        path=path, dtype=torch.float64)
    dropped.load_state_dict(plain.state_dict())
    x = torch.randn(L, N, H_IN, dtype=torch.float64)
    out_eval, _ = dropped.eval()(x)
    assert_close(out_eval, plain(x)[0], 1e-10)
    # and the test is not vacuous: in training mode dropout changes the output
    torch.manual_seed(1)
    assert (dropped.train()(x)[0] - out_eval).abs().max() > 1e-3


@pytest.mark.parametrize("cell", list(CELLS))
def test_fused_and_step_paths_agree_with_dropout_in_eval(cell):
    mode, nonlin, _ = CELLS[cell]
    rnn = Recurrent(mode, H_IN, H, num_layers=2, dropout=0.3, nonlinearity=nonlin,
                    dtype=torch.float64).eval()
    x = torch.randn(L, N, H_IN, dtype=torch.float64)
    h0 = random_state(cell, 2, torch.float64)
    out_f, hn_f = rnn(x, h0, path="fused")
    out_s, hn_s = rnn(x, h0, path="step")
    assert_close(out_s, out_f, 1e-10)
    for a, b in zip(as_tuple(hn_s), as_tuple(hn_f), strict=True):
        assert_close(a, b, 1e-10)


# "auto" must notice the transform and take the step path (the fused kernel has no vmap rule)
@pytest.mark.parametrize("path", ["step", "auto"])
@pytest.mark.parametrize("cell", list(CELLS))
def test_vmap_over_stacked_parameters_on_step_path(cell, path):
    mode, nonlin, _ = CELLS[cell]
    rnn = Recurrent(mode, H_IN, H, num_layers=2, nonlinearity=nonlin, path=path,
                    dtype=torch.float64)
    copies = []
    for seed in range(3):
        torch.manual_seed(seed)
        rnn.reset_parameters()
        copies.append({k: v.detach().clone() for k, v in rnn.named_parameters()})
    stacked = {k: torch.stack([c[k] for c in copies]) for k in copies[0]}  # (3, *shape)
    x = torch.randn(L, N, H_IN, dtype=torch.float64)

    out, hn = vmap(lambda p: functional_call(rnn, p, (x,)))(stacked)
    assert out.shape == (3, L, N, H)
    for i, params in enumerate(copies):
        out_i, hn_i = functional_call(rnn, params, (x,))
        assert_close(out[i], out_i, 1e-10)
        for a, b in zip(as_tuple(hn), as_tuple(hn_i), strict=True):
            assert_close(a[i], b, 1e-10)
    # the copies really differ, so the check above could fail
    assert (out[0] - out[1]).abs().max() > 1e-3


# torch.func.jvp's first call scripts torch's own decompositions (torch-internal warning)
@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
@pytest.mark.parametrize("path", ["step", "auto"])
@pytest.mark.parametrize("cell", list(CELLS))
def test_jvp_on_step_path_matches_finite_differences(cell, path):
    mode, nonlin, _ = CELLS[cell]
    torch.manual_seed(0)
    rnn = Recurrent(mode, H_IN, H, num_layers=2, nonlinearity=nonlin, path=path,
                    dtype=torch.float64)
    params = {k: v.detach() for k, v in rnn.named_parameters()}
    x = torch.randn(L, N, H_IN, dtype=torch.float64)
    h0 = tuple(t.detach() for t in as_tuple(random_state(cell, 2, torch.float64)))

    def f(p, x, h0):
        out, hn = functional_call(rnn, p, (x, h0 if cell == "lstm" else h0[0]))
        return torch.cat([out.flatten(), *(t.flatten() for t in as_tuple(hn))])

    primals = (params, x, h0)
    tangents = ({k: torch.randn_like(v) for k, v in params.items()}, torch.randn_like(x),
                tuple(torch.randn_like(t) for t in h0))
    _, dy = jvp(f, primals, tangents)

    eps = 1e-6  # central differences: O(eps^2) truncation, O(1e-16/eps) rounding

    def shifted(sign):
        return torch.utils._pytree.tree_map(lambda p, t: p + sign * eps * t, primals, tangents)

    fd = (f(*shifted(+1)) - f(*shifted(-1))) / (2 * eps)
    assert dy.abs().max() > 1e-2
    assert_close(dy, fd, 1e-7)


@pytest.mark.parametrize("name", ["rnn_tanh", "rnn_relu", "lstm", "gru", "reservoir", "local"])
def test_recur_with_stacked_weights_equals_one_network_at_a_time(name):
    # Population evaluation runs P networks through the cell's own recur with stacked
    # weights (P, G*H, H), biases (P, 1, G*H) and states (P, N, H): no vmap, same step.
    from rnntrain.core.cells import CELLS as CELL_TABLE

    cell, P = CELL_TABLE[name], 3
    g = torch.Generator().manual_seed(0)
    G = cell.gates
    w_hh = torch.randn(P, G * H, H, dtype=torch.float64, generator=g)
    b_hh = torch.randn(P, 1, G * H, dtype=torch.float64, generator=g)
    gx = torch.randn(P, N, G * H, dtype=torch.float64, generator=g)
    state = tuple(torch.randn(P, N, H, dtype=torch.float64, generator=g) for _ in range(cell.state_arity))
    batched = cell.recur(gx, state, w_hh, b_hh)
    for i in range(P):
        one = cell.recur(gx[i], tuple(s[i] for s in state), w_hh[i], b_hh[i, 0])
        for a, b in zip(batched, one, strict=True):
            assert_close(a[i], b, 1e-12)
    # bias_in_gx: the cell's own claim that gx may absorb b_hh (what a batched caller relies on)
    folded = cell.recur(gx + b_hh, state, w_hh, None)
    same = all(torch.allclose(a, b, atol=1e-12) for a, b in zip(batched, folded, strict=True))
    assert same == cell.bias_in_gx


@pytest.mark.parametrize("mode", ["RNN", "LSTM", "GRU"])
def test_flat_state_orders_h_then_c_layer_by_layer_and_round_trips(mode):
    rnn = Recurrent(mode, 3, 5, num_layers=2)
    hx = rnn.initial_state(4)
    hx = tuple(torch.randn_like(h) for h in hx) if isinstance(hx, tuple) else torch.randn_like(hx)
    flat = rnn.flat_state(hx)  # (N, arity * layers * H)
    parts = hx if isinstance(hx, tuple) else (hx,)
    assert flat.shape == (4, len(parts) * 2 * 5)
    assert torch.equal(flat[1, 5:10], parts[0][1, 1])  # h of layer 1, stream 1
    if mode == "LSTM":
        assert torch.equal(flat[2, 10:15], parts[1][0, 2])  # c of layer 0, stream 2
    back = rnn.unflat_state(flat)
    assert all(torch.equal(a, b) for a, b in zip(back if isinstance(back, tuple) else (back,), parts))

"""Sequences of different lengths through the recurrent core: the drop-in promise extends to
torch's PackedSequence (outputs and final states equal to torch's), the step path equals the
fused path on ragged batches, and nothing after a sequence's length changes anything."""
import itertools

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from rnntrain import Recurrent

CELLS = [("RNN", "tanh"), ("RNN", "relu"), ("LSTM", "tanh"), ("GRU", "tanh")]
CASES = list(itertools.product(CELLS, (False, True), (1, 2)))  # cell, bidirectional, layers
IDS = [f"{m}-{nl}-{'bi' if b else 'uni'}-{k}" for (m, nl), b, k in CASES]
LENGTHS = torch.tensor([7, 3, 5, 1, 7, 4])


def _pair(mode, nl, bidirectional, layers, batch_first=False):
    torch.manual_seed(0)
    cls = {"RNN": torch.nn.RNN, "LSTM": torch.nn.LSTM, "GRU": torch.nn.GRU}[mode]
    kw = {"nonlinearity": nl} if mode == "RNN" else {}
    ref = cls(3, 5, layers, bidirectional=bidirectional, batch_first=batch_first, **kw).double()
    ours = Recurrent(mode, 3, 5, layers, bidirectional=bidirectional, batch_first=batch_first,
                     nonlinearity=nl).double()
    ours.load_state_dict(ref.state_dict())
    return ref, ours


def _hidden(mode, bidirectional, layers, n, g):
    D = 2 if bidirectional else 1
    h = torch.randn(D * layers, n, 5, generator=g, dtype=torch.float64)
    return (h, torch.randn(D * layers, n, 5, generator=g, dtype=torch.float64)) if mode == "LSTM" else h


def _flat(hn):
    return torch.cat([h.reshape(-1) for h in (hn if isinstance(hn, tuple) else (hn,))])


@pytest.mark.parametrize("path", ["fused", "step", "compiled"])
@pytest.mark.parametrize("cell,bidirectional,layers", CASES, ids=IDS)
def test_packed_input_equals_torch_outputs_and_final_states(cell, bidirectional, layers, path):
    (mode, nl) = cell
    ref, ours = _pair(mode, nl, bidirectional, layers)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(7, 6, 3, generator=g, dtype=torch.float64)
    hx = _hidden(mode, bidirectional, layers, 6, g)
    packed = pack_padded_sequence(x, LENGTHS, enforce_sorted=False)
    want_out, want_hn = ref(packed, hx)
    got_out, got_hn = ours(packed, hx, path=path)
    assert torch.equal(got_out.batch_sizes, want_out.batch_sizes)
    assert torch.equal(got_out.unsorted_indices, want_out.unsorted_indices)
    assert (got_out.data - want_out.data).abs().max() <= 1e-10
    assert (_flat(got_hn) - _flat(want_hn)).abs().max() <= 1e-10


@pytest.mark.parametrize("path", ["fused", "step", "compiled"])
@pytest.mark.parametrize("cell,bidirectional,layers", CASES, ids=IDS)
def test_padded_input_with_lengths_equals_torch_packed(cell, bidirectional, layers, path):
    (mode, nl) = cell
    ref, ours = _pair(mode, nl, bidirectional, layers, batch_first=True)
    g = torch.Generator().manual_seed(2)
    x = torch.randn(6, 7, 3, generator=g, dtype=torch.float64)
    want_out, want_hn = ref(pack_padded_sequence(x, LENGTHS, batch_first=True, enforce_sorted=False))
    want_out, _ = pad_packed_sequence(want_out, batch_first=True, total_length=7)
    got_out, got_hn = ours(x, lengths=LENGTHS, path=path)
    assert (got_out - want_out).abs().max() <= 1e-10
    assert (_flat(got_hn) - _flat(want_hn)).abs().max() <= 1e-10
    # without the final state (the fast LSTM route), the outputs are the same
    fast_out, _ = ours(x, lengths=LENGTHS, path=path, final_state=False)
    assert (fast_out - want_out).abs().max() <= 1e-10


@pytest.mark.parametrize("cell,bidirectional,layers", CASES, ids=IDS)
def test_garbage_after_a_sequences_length_changes_no_output_state_or_gradient(cell, bidirectional, layers):
    (mode, nl) = cell
    _, ours = _pair(mode, nl, bidirectional, layers, batch_first=True)
    g = torch.Generator().manual_seed(3)
    x = torch.randn(6, 7, 3, generator=g, dtype=torch.float64)
    valid = torch.arange(7)[None, :, None] < LENGTHS[:, None, None]
    noisy = torch.where(valid, x, 1e3 * torch.randn(x.shape, generator=g, dtype=torch.float64))
    for path, final_state in (("fused", True), ("fused", False), ("step", True), ("compiled", True)):
        results = []
        for inp in (x, noisy):
            ours.zero_grad()
            out, hn = ours(inp, lengths=LENGTHS, path=path, final_state=final_state)
            (out.square().sum() + (_flat(hn).sum() if hn is not None else 0)).backward()
            results.append((out.detach(), None if hn is None else _flat(hn).detach(),
                            torch.cat([p.grad.reshape(-1) for p in ours.parameters()])))
        (o1, h1, g1), (o2, h2, g2) = results
        assert torch.equal(o1, o2) and torch.equal(g1, g2), path
        assert h1 is None or torch.equal(h1, h2)
        assert (o1[~valid.expand_as(o1)] == 0).all()  # zeros after the end, as torch pads


def test_a_sequence_of_length_zero_keeps_its_initial_state():
    _, ours = _pair("LSTM", "tanh", True, 1, batch_first=True)
    x = torch.randn(3, 4, 3, dtype=torch.float64)
    hx = _hidden("LSTM", True, 1, 3, torch.Generator().manual_seed(4))
    for path in ("fused", "step", "compiled"):
        out, (h, c) = ours(x, hx, lengths=torch.tensor([4, 0, 2]), path=path)
        assert torch.equal(h[:, 1], hx[0][:, 1]) and torch.equal(c[:, 1], hx[1][:, 1])
        assert (out[1] == 0).all()


def test_full_lengths_take_the_plain_kernel_bit_for_bit():
    _, ours = _pair("GRU", "tanh", True, 2, batch_first=True)
    x = torch.randn(3, 4, 3, dtype=torch.float64)
    a, ha = ours(x)
    b, hb = ours(x, lengths=torch.tensor([4, 4, 4]))
    assert torch.equal(a, b) and torch.equal(ha, hb)


@pytest.mark.parametrize("bad,match", [(torch.tensor([1, 2]), "1-D tensor of 3"),
                                       (torch.tensor([1, 9, 2]), r"lie in \[0, 4\]")])
def test_bad_lengths_are_named(bad, match):
    _, ours = _pair("RNN", "tanh", False, 1, batch_first=True)
    with pytest.raises(ValueError, match=match):
        ours(torch.randn(3, 4, 3, dtype=torch.float64), lengths=bad)

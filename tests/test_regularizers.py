"""The recurrent regularisers: each changes the forward in training with its documented
probability and structure, is off in evaluation (zoneout: its expectation), draws from the
seeded generator, and is refused by the families that do not train through it."""
from __future__ import annotations

import pytest
import torch

import rnntrain
from rnntrain.algorithms import ALGORITHMS
from rnntrain.core import Noise, Recurrent
from rnntrain.errors import UserError

from conftest import POPULATION, assert_resume_equals_uninterrupted

P = 0.3
N, L, F = 400, 6, 8  # sequences, steps, features: enough draws for 3-sigma bounds


def see_through(noise: Noise, layers: int = 1) -> Recurrent:
    """A ReLU network whose output is its input (W_ih = I, W_hh = 0, no bias): what dropout
    does to the input or output is read straight off the output."""
    rnn = Recurrent("RNN", F, F, layers, bias=False, batch_first=True, nonlinearity="relu",
                    dropout=P if layers > 1 else 0.0, noise=noise).double()
    with torch.no_grad():
        for name, p in rnn.named_parameters():
            p.copy_(torch.eye(F) if name.startswith("weight_ih") else torch.zeros_like(p))
    return rnn


def positive_inputs() -> torch.Tensor:
    return torch.rand(N, L, F, dtype=torch.float64) + 0.5


def dropped_fraction(out: torch.Tensor) -> float:
    return float((out == 0).double().mean())


def assert_near(fraction: float, p: float, draws: int) -> None:
    sigma = (p * (1 - p) / draws) ** 0.5
    assert abs(fraction - p) < 4 * sigma, (fraction, p)


@pytest.mark.parametrize("noise,layers", [
    (Noise(input_dropout=P), 1), (Noise(output_dropout=P), 1), (Noise(), 2),
    (Noise(input_dropout=P, variational=True), 1), (Noise(output_dropout=P, variational=True), 1),
    (Noise(variational=True), 2),
], ids=["input", "output", "between-layers", "input-variational", "output-variational",
        "between-layers-variational"])
def test_dropout_zeroes_its_fraction_scales_the_rest_and_is_off_in_evaluation(noise, layers):
    torch.manual_seed(0)
    rnn = see_through(noise, layers)
    x = positive_inputs()
    out, _ = rnn(x)
    assert_near(dropped_fraction(out), P, N * L * F if not noise.variational else N * F)
    kept = out != 0
    torch.testing.assert_close(out[kept], (x / (1 - P))[kept])
    if noise.variational:  # one mask per sequence: a unit dropped at one step is dropped at all
        assert torch.equal(kept, kept[:, :1].expand_as(kept))
    else:
        assert not torch.equal(kept, kept[:, :1].expand_as(kept))
    rnn.eval()
    torch.testing.assert_close(rnn(x)[0], x)


def test_recurrent_dropout_drops_h_into_the_recurrent_weights_once_per_sequence():
    """W_ih = 0, b = 1, W_hh = I: h_1 = 1, then h_t = 1 + keep * h_(t-1); a dropped unit stays at
    1 for the whole sequence, a kept one grows; the carried state itself is never zeroed."""
    torch.manual_seed(1)
    rnn = Recurrent("RNN", F, F, 1, batch_first=True, nonlinearity="relu",
                    noise=Noise(recurrent_dropout=P)).double()
    with torch.no_grad():
        rnn.weight_ih_l0.zero_()
        rnn.weight_hh_l0.copy_(torch.eye(F))
        rnn.bias_ih_l0.fill_(1.0)
        rnn.bias_hh_l0.zero_()
    out, _ = rnn(positive_inputs())
    dropped = out[:, -1] == 1.0  # (N, F)
    assert_near(float(dropped.double().mean()), P, N * F)
    assert torch.equal(out[dropped[:, None, :].expand_as(out)], torch.ones_like(out[dropped[:, None, :].expand_as(out)]))
    keep = 1 / (1 - P)
    torch.testing.assert_close(out[:, 1][~dropped], torch.full_like(out[:, 1][~dropped], 1 + keep))
    rnn.eval()
    torch.testing.assert_close(rnn(positive_inputs())[0][:, -1], torch.full((N, F), float(L), dtype=torch.float64))


def test_zoneout_keeps_each_unit_with_its_probability_and_evaluates_the_expectation():
    torch.manual_seed(2)
    rnn = see_through(Noise(zoneout=P))
    x = positive_inputs()
    out, _ = rnn(x)
    previous = torch.cat([torch.zeros(N, 1, F, dtype=torch.float64), out[:, :-1]], 1)
    kept = out == previous
    assert_near(float(kept.double().mean()), P, N * L * F)
    torch.testing.assert_close(out[~kept], x[~kept])  # the rest take the new value, unscaled
    rnn.eval()
    expected, h = [], torch.zeros(N, F, dtype=torch.float64)
    for t in range(L):
        h = P * h + (1 - P) * x[:, t]
        expected.append(h)
    torch.testing.assert_close(rnn(x)[0], torch.stack(expected, 1))


def test_weight_drop_masks_the_recurrent_matrix_once_per_call_and_is_off_in_evaluation():
    torch.manual_seed(3)
    rnn = Recurrent("LSTM", 4, 30, 1, noise=Noise(weight_drop=P)).double()
    w = rnn.weight_hh_l0.detach()
    dropped = rnn.effective_weights()[0][1].detach()
    assert_near(dropped_fraction(dropped), P, w.numel())
    torch.testing.assert_close(dropped[dropped != 0], (w / (1 - P))[dropped != 0])
    x = torch.randn(5, 3, 4, dtype=torch.float64)
    assert not torch.equal(rnn(x)[0], rnn(x)[0])  # a fresh mask per call, on the fused kernel too
    rnn.eval()
    assert rnn.effective_weights()[0][1] is rnn.weight_hh_l0
    reference = Recurrent("LSTM", 4, 30, 1).double()
    reference.load_state_dict(rnn.state_dict())
    torch.testing.assert_close(rnn(x)[0], reference(x)[0])


@pytest.mark.parametrize("cell", ["LSTM", "GRU", "ln_lstm", "peephole", "indrnn", "ctrnn"])
def test_every_regulariser_is_seeded_and_the_same_on_the_fused_and_step_paths(cell):
    noise = Noise(input_dropout=0.1, output_dropout=0.1, variational=True, weight_drop=0.2)
    rnn = Recurrent(cell, 3, 6, 2, batch_first=True, dropout=0.2, noise=noise).double()
    x = torch.randn(4, 7, 3, dtype=torch.float64)
    runs = []
    for path in ("auto", "step"):
        torch.manual_seed(5)
        runs.append(rnn(x, path=path)[0])
    torch.testing.assert_close(runs[0], runs[1], rtol=1e-10, atol=1e-12)
    noisier = Recurrent(cell, 3, 6, 2, batch_first=True, noise=Noise(zoneout=0.2, recurrent_dropout=0.2)).double()
    torch.manual_seed(6)
    a = noisier(x)[0]
    torch.manual_seed(6)
    torch.testing.assert_close(noisier(x)[0], a, rtol=0, atol=0)


REGULARISED = {"model.cell": "lstm", "model.zoneout": 0.1, "model.weight_drop": 0.2}


@pytest.mark.parametrize("algorithm", sorted(ALGORITHMS))
def test_only_backpropagation_through_time_trains_a_regularised_network(tmp_path, algorithm):
    config = rnntrain.load_config(base={**REGULARISED, "algorithm.name": algorithm, "train.epochs": 1,
                                        "task.length": 200, "model.hidden": 4,
                                        **({"algorithm.population": 4} if algorithm in POPULATION else {})})
    if algorithm == "bptt":
        result = rnntrain.train(config, tmp_path / "run")
        assert result.summary["rounds"] == 1
        return
    with pytest.raises(UserError, match="model.zoneout, model.weight_drop act .* use --algorithm bptt"):
        rnntrain.train(config, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_a_regularised_run_resumes_exactly(tmp_path):
    config = rnntrain.load_config(base={**REGULARISED, "model.recurrent_dropout": 0.2, "model.layers": 2,
                                        "model.dropout": 0.2, "model.variational": True,
                                        "model.input_dropout": 0.1, "model.output_dropout": 0.1,
                                        "train.epochs": 3, "task.length": 200, "model.hidden": 6})
    assert_resume_equals_uninterrupted(config, tmp_path, after=1)

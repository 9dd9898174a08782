"""Attention over recurrent states: the score forms, masks, gradients, and the pooling readout."""
import math

import pytest
import torch
from torch.func import functional_call

import rnntrain
import rnntrain.algorithms
from rnntrain.errors import UserError
from rnntrain.models import ModelConfig, build_model
from rnntrain.models.attention import ATTENTION, Attention, masked_softmax
from rnntrain.tasks.base import TaskSpec

from conftest import algorithm_settings, trains_or_refuses

F64 = torch.float64


def memory_and_mask(n=3, steps=6, size=4):
    g = torch.Generator().manual_seed(0)
    memory = torch.randn(n, steps, size, generator=g, dtype=F64)
    lengths = torch.tensor([6, 3, 1])
    mask = torch.arange(steps)[None, :] < lengths[:, None]
    return memory, mask, lengths


@pytest.mark.parametrize("kind", ATTENTION)
@pytest.mark.parametrize("per_step", [False, True])
def test_weights_sum_to_one_over_valid_positions_and_are_exactly_zero_on_padding(kind, per_step):
    torch.manual_seed(0)
    memory, mask, _ = memory_and_mask()
    att = Attention(kind, 4, 4).double()
    query = torch.randn(3, 5, 4, dtype=F64) if per_step else torch.randn(3, 4, dtype=F64)
    context, weights = att(query, memory, mask)
    m = mask[:, None, :] if per_step else mask
    assert torch.all(weights[~m.expand_as(weights)] == 0.0)  # exactly, not approximately
    assert torch.allclose(weights.sum(-1), torch.ones_like(weights.sum(-1)), atol=1e-12)
    assert torch.allclose(context, weights @ memory if per_step else (weights[:, None] @ memory)[:, 0])


@pytest.mark.parametrize("kind", ATTENTION)
def test_padding_content_changes_nothing(kind):
    torch.manual_seed(0)
    memory, mask, _ = memory_and_mask()
    att = Attention(kind, 4, 4).double()
    query = torch.randn(3, 4, dtype=F64)
    garbage = memory.clone()
    garbage[~mask] = 1e3 * torch.randn(int((~mask).sum()), 4, dtype=F64)
    for a, b in zip(att(query, memory, mask), att(query, garbage, mask)):
        assert torch.equal(a, b)


def test_a_memory_without_valid_positions_gives_a_zero_context_not_nan():
    weights = masked_softmax(torch.randn(2, 5), torch.zeros(2, 5, dtype=torch.bool))
    assert torch.equal(weights, torch.zeros(2, 5))


def test_the_score_forms_are_the_papers_formulas():
    torch.manual_seed(0)
    memory, _, _ = memory_and_mask()
    q = torch.randn(3, 4, dtype=F64)
    dot = Attention("dot", 4, 4).double()
    assert torch.allclose(dot(q, memory)[1], torch.softmax(torch.einsum("nk,nsk->ns", q, memory), -1))
    scaled = Attention("scaled-dot", 4, 4).double()
    assert torch.allclose(scaled(q, memory)[1], torch.softmax(torch.einsum("nk,nsk->ns", q, memory) / 2.0, -1))
    general = Attention("general", 4, 4).double()
    W = general.key.weight  # score = q^T W k
    assert torch.allclose(general(q, memory)[1], torch.softmax(torch.einsum("nq,qk,nsk->ns", q, W, memory), -1))
    add = Attention("additive", 4, 4, size=6).double()
    e = torch.tanh(q[:, None] @ add.query.weight.T + memory @ add.key.weight.T + add.key.bias) @ add.v.weight[0]
    assert torch.allclose(add(q, memory)[1], torch.softmax(e, -1))


@pytest.mark.parametrize("kind", ATTENTION)
def test_gradients_of_every_form_pass_a_float64_finite_difference_check(kind):
    torch.manual_seed(0)
    memory, mask, _ = memory_and_mask(steps=5)
    att = Attention(kind, 4, 4).double()
    names = [n for n, _ in att.named_parameters()]
    params = [p.detach().clone().requires_grad_() for _, p in att.named_parameters()]
    query = torch.randn(3, 2, 4, dtype=F64, requires_grad=True)
    mem = memory.clone().requires_grad_()

    def f(q, m, *ps):
        return functional_call(att, dict(zip(names, ps)), (q, m, mask))

    assert torch.autograd.gradcheck(f, (query, mem, *params), eps=1e-6, atol=1e-7)


def test_dot_forms_refuse_queries_and_keys_of_different_sizes_in_one_line():
    with pytest.raises(UserError, match="general or additive"):
        Attention("dot", 8, 16)


def test_the_papers_names_are_accepted_and_stored_as_the_forms():
    assert ModelConfig(attention="bahdanau").attention == "additive"
    assert ModelConfig(attention="luong").attention == "general"
    with pytest.raises(UserError, match="unknown attention"):
        ModelConfig(attention="multihead")


def test_attention_pooling_readout_ignores_padding_and_reports_its_weights():
    torch.manual_seed(0)
    model = build_model(ModelConfig(readout="attention", hidden=6, bidirectional=True), TaskSpec(2, 3), dtype=F64)
    x = torch.randn(3, 7, 2, dtype=F64)
    lengths = torch.tensor([7, 4, 2])
    out = model(x, lengths=lengths)[0]
    noisy = x.clone()
    noisy[1, 4:] = 50.0
    noisy[2, 2:] = -50.0
    assert torch.allclose(out, model(noisy, lengths=lengths)[0], atol=1e-12)
    w = model.attention_weights(x, lengths)
    assert torch.all(w[1, 4:] == 0) and torch.all(w[2, 2:] == 0)
    assert torch.allclose(w.sum(1), torch.ones(3, dtype=F64))
    assert model.reads_all_steps and not model.per_step


@pytest.mark.parametrize("kind", ["classify", "regress"])
def test_attention_pooling_trains_a_sequence_label_and_plots_its_weights(tmp_path, kind):
    config = rnntrain.load_config(base={"task.kind": kind, "task.size": 120, "model.readout": "attention",
                                        "model.hidden": 8, "train.epochs": 3})
    run = rnntrain.train(config, tmp_path / "run")
    assert math.isfinite(run.summary["metrics"]["val"]["loss"])
    assert (tmp_path / "run" / "attention.png").stat().st_size > 1000


def test_attention_pooling_works_for_forecasting():
    # the seed sine example with an attention-pooling readout learns as the last-step one does
    config = rnntrain.load_config(base={"model.readout": "attention", "model.hidden": 8, "train.epochs": 10})
    run = rnntrain.train(config)
    assert run.history[-1]["val_loss"] < 0.1 * run.history[0]["val_loss"]


READS_EVERY_STEP_REFUSED = {"rtrl", "uoro", "snap1", "snap2", "crbp", "esn"}


@pytest.mark.parametrize("algorithm", sorted(rnntrain.algorithms.ALGORITHMS))
def test_every_algorithm_trains_attention_pooling_or_refuses_in_one_line(algorithm):
    base = {"task.kind": "classify", "task.size": 40, "model.readout": "attention", "model.hidden": 5,
            "train.epochs": 2, **algorithm_settings(algorithm), "model.bidirectional": False}
    run = trains_or_refuses(rnntrain.load_config(base=base), algorithm in READS_EVERY_STEP_REFUSED, "readout")
    if run is not None:
        assert math.isfinite(run.summary["metrics"]["val"]["loss"])

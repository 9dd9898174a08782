"""Hessian-free optimisation (Martens 2010; Martens & Sutskever 2011): exact Gauss-Newton
products, the CG stopping rule, damping, resume, and that it beats SGD on a long lag."""
from __future__ import annotations

import pytest
import torch
from torch.func import functional_call

import rnntrain
from rnntrain.algorithms import ALGORITHMS
from rnntrain.algorithms.base import Context
from rnntrain.algorithms.curvature import Curvature, Curvatures, Unrolled, gauss_newton_product
from rnntrain.algorithms.hf import HessianFree, HFOptions
from rnntrain.errors import UserError
from rnntrain.models import ModelConfig, build_model
from rnntrain.tasks import Batch, PathologicalConfig, PathologicalTask

F64 = torch.float64


def explicit_gauss_newton(model, loss, x, y, structural):
    """J^T H_L J + structural * J_h^T J_h / (N L), every matrix built entry by entry."""
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]
    sizes = [p.numel() for p in model.parameters()]
    theta = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    wrapped = Unrolled(model)

    def f(flat, which):
        params = {"model." + n: t.view(s) for n, t, s in zip(names, flat.split(sizes), shapes)}
        return functional_call(wrapped, params, (x,))[which]

    out, states = f(theta, 0), f(theta, 1)
    J = torch.autograd.functional.jacobian(lambda t: f(t, 0).reshape(-1), theta)  # (outputs, P)
    Jh = torch.autograd.functional.jacobian(lambda t: f(t, 1).reshape(-1), theta)  # (N L H, P)
    H = torch.autograd.functional.hessian(lambda z: loss(z.view(out.shape), Batch(x, y)), out.reshape(-1))
    return J.T @ H @ J + structural * Jh.T @ Jh / (states.shape[0] * states.shape[1]), theta


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("problem", ["adding", "order2", "memorize5"])  # MSE, CE, masked per-step CE
def test_gauss_newton_product_equals_the_explicit_matrix_in_float64(cell, problem):
    task = PathologicalTask(PathologicalConfig(problem=problem, length=20, eval_size=2), dtype=F64)
    x, y = task.sample(3, torch.Generator().manual_seed(0))
    x = x[:, :9] if problem != "memorize5" else x
    model = build_model(ModelConfig(cell=cell, hidden=3), task.spec,
                        generator=torch.Generator().manual_seed(0), dtype=F64)
    G, theta = explicit_gauss_newton(model, task.loss, x, y, structural=0.3)
    v = torch.randn(theta.numel(), dtype=F64, generator=torch.Generator().manual_seed(1))
    gv = gauss_newton_product(model, task.loss, Batch(x, y), v, structural=0.3)
    assert torch.allclose(gv, G @ v, rtol=1e-10, atol=1e-12)
    assert torch.linalg.eigvalsh(G).min() > -1e-10  # positive semi-definite, unlike the Hessian
    curv = Curvature(model, task.loss, Batch(x, y), structural=0.3)
    assert torch.equal(curv.product(v), curv.product(v))  # the shared vjp can be reused


def test_with_dropout_every_product_of_a_cg_run_sees_one_network_so_the_matrix_is_symmetric_psd():
    # training mode draws dropout masks; G must still be one symmetric PSD matrix for CG to solve
    task = PathologicalTask(PathologicalConfig(problem="adding", length=20, eval_size=2), dtype=F64)
    x, y = task.sample(4, torch.Generator().manual_seed(0))
    model = build_model(ModelConfig(cell="lstm", hidden=4, layers=2, dropout=0.5), task.spec,
                        generator=torch.Generator().manual_seed(0), dtype=F64).train()
    torch.manual_seed(0)
    curv = Curvature(model, task.loss, Batch(x[:, :9], y), structural=0.3)
    g = torch.Generator().manual_seed(1)
    v, w = (torch.randn(curv.theta.numel(), dtype=F64, generator=g) for _ in range(2))
    assert abs(float(w @ curv.product(v) - v @ curv.product(w))) < 1e-12 * float(v.norm() * w.norm())
    assert float(v @ curv.product(v)) > 0
    assert torch.equal(curv.product(v), curv.product(v))


@pytest.mark.parametrize("dim", [0, 1])
def test_the_stack_of_a_time_loop_is_twice_differentiable_and_only_special_within_stepping(dim):
    from rnntrain.core.unroll import stack_steps, stepping

    steps = [torch.randn(3, 2, dtype=F64, requires_grad=True) for _ in range(4)]
    with stepping():
        assert torch.equal(stack_steps(steps, dim), torch.stack(steps, dim))
        assert stack_steps(steps, dim).grad_fn.name() != "StackBackward0"  # the one-unbind backward
        assert torch.autograd.gradgradcheck(lambda *t: stack_steps(t, dim).sin(), steps)
    assert stack_steps(steps, dim).grad_fn.name() == "StackBackward0"  # outside: torch.stack


def test_a_minibatch_of_chunks_of_different_lengths_is_the_mean_over_its_sequences():
    # one sequence length per task batch: a step mixes lengths by taking several batches
    task = PathologicalTask(PathologicalConfig(problem="adding", length=20, eval_size=2), dtype=F64)
    model = build_model(ModelConfig(cell="rnn", hidden=3), task.spec,
                        generator=torch.Generator().manual_seed(0), dtype=F64)
    g = torch.Generator().manual_seed(0)
    (x1, y1), (x2, y2) = task.sample(2, g), task.sample(3, g)
    x1 = x1[:, :7]  # two lengths for certain: 7 and 20..22
    G1, theta = explicit_gauss_newton(model, task.loss, x1, y1, structural=0.3)
    G2, _ = explicit_gauss_newton(model, task.loss, x2, y2, structural=0.3)
    v = torch.randn(theta.numel(), dtype=F64, generator=torch.Generator().manual_seed(1))
    mixed = Curvatures(model, task.loss, [Batch(x1, y1), Batch(x2, y2)], structural=0.3)
    assert torch.allclose(mixed.product(v), (2 * G1 @ v + 3 * G2 @ v) / 5, rtol=1e-10, atol=1e-12)
    hf = HessianFree(Context(model, task, None, 1, 5, g), HFOptions())
    loss, grad = hf._gradient([Batch(x1, y1), Batch(x2, y2)])
    out = torch.cat([model(x1)[0], model(x2)[0]])  # both answer at their last step: (5, 1)
    expected = task.loss(out, Batch(torch.zeros(5, 1, 2, dtype=F64), torch.cat([y1, y2])))
    assert abs(loss - float(expected.detach())) < 1e-14
    expected_grad = torch.autograd.grad(expected, list(model.parameters()))
    assert torch.allclose(grad, torch.cat([t.reshape(-1) for t in expected_grad]), rtol=1e-12, atol=1e-14)


def test_batches_per_step_groups_the_rounds_batches_into_outer_iterations():
    for per_step, steps in ((1, 5), (2, 3), (5, 1)):  # 5 batches a round: 2 + 2 + the last 1
        run = rnntrain.train(hf_config(**{"task.epoch_batches": 5, "train.epochs": 1, "train.batch_size": 10,
                                          "algorithm.batches_per_step": per_step}))
        assert run.history[-1]["train_outer_iterations"] == steps


def hf_config(**overrides):
    base = {"task.kind": "pathological", "task.problem": "adding", "task.length": 20,
            "task.epoch_batches": 2, "task.eval_size": 100, "model.hidden": 8, "model.init": "sparse",
            "model.spectral_radius": 1.1, "model.input_scale": 0.1, "model.output_scale": 0.1,
            "algorithm.name": "hf", "algorithm.cg_max_iters": 15, "train.batch_size": 60,
            "train.epochs": 3, "train.restore_best": False}
    base.update(overrides)
    if base["algorithm.name"] != "hf":
        base = {k: v for k, v in base.items() if not k.startswith("algorithm.") or k == "algorithm.name"}
    return rnntrain.load_config(base=base)


def test_hf_is_registered_and_its_options_name_the_fix():
    assert ALGORITHMS["hf"].Options is HFOptions
    with pytest.raises(UserError, match="curvature_fraction must be in"):
        HFOptions(curvature_fraction=0.0)
    with pytest.raises(UserError, match="did you mean 'damping'"):
        hf_config(**{"algorithm.dampng": 1.0})


def test_hf_resume_equals_uninterrupted(tmp_path):
    from conftest import assert_resume_equals_uninterrupted

    assert_resume_equals_uninterrupted(hf_config(), tmp_path, after=1, compare=("train_loss", "train_lambda"))


def test_levenberg_marquardt_damping_and_martens_cg_stop():
    result = rnntrain.train(hf_config(**{"algorithm.damping": 10.0, "algorithm.cg_max_iters": 200,
                                         "train.epochs": 2}))
    rows = result.history
    assert all(r["train_cg_iters"] < 200 for r in rows)  # the relative-progress rule stopped CG
    # with huge damping the quadratic model is pessimistic (rho > 3/4): lambda shrinks by 2/3
    assert rows[-1]["train_lambda"] < 10.0


@pytest.mark.slow(25)
def test_hf_solves_a_lag_that_sgd_does_not_in_as_many_gradient_evaluations():
    # Martens & Sutskever 2011, sec. 5, scaled down: adding, T = 30, 20 tanh units, sparse init
    common = {"task.length": 30, "task.eval_size": 500, "model.hidden": 20, "train.epochs": 4,
              "seed": 1}
    hf = rnntrain.train(hf_config(**common, **{"task.epoch_batches": 10, "train.batch_size": 500,
                                               "algorithm.cg_max_iters": 40}))
    # every CG iteration is one Gauss-Newton product (~ one gradient on the curvature batch)
    evaluations = sum(10 * (1 + r["train_cg_iters"]) for r in hf.history)
    sgd = rnntrain.train(hf_config(**common, **{
        "algorithm.name": "bptt", "optim.name": "sgd", "optim.lr": 0.01, "optim.momentum": 0.9,
        "optim.nesterov": True, "train.batch_size": 100, "task.epoch_batches": int(evaluations) // 4}))
    hf_loss, sgd_loss = hf.history[-1]["val_loss"], sgd.history[-1]["val_loss"]
    assert hf_loss < 0.05 < 0.12 < sgd_loss, (hf_loss, sgd_loss)  # predicting the mean: 1/6


def test_hf_from_the_cli(tmp_path, capsys):
    from rnntrain.cli.main import main

    code = main(["train", "--algorithm", "hf", "--epochs", "1", "--hidden", "4", "--batch-size", "20",
                 "--set", "task.kind=pathological", "--set", "task.length=20",
                 "--set", "task.epoch_batches=1", "--set", "task.eval_size=20",
                 "--set", "algorithm.cg_max_iters=3", "--out", str(tmp_path / "run"), "--quiet"])
    assert code == 0 and (tmp_path / "run" / "checkpoint.pt").exists()

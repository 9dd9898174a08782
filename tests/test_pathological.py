"""The pathological long-time-lag tasks, checked against their published definitions
(Hochreiter & Schmidhuber 1997 exp. 4-6; Martens & Sutskever 2011; Le et al. 2015)."""
from __future__ import annotations

import pytest
import torch

from rnntrain.errors import UserError
from rnntrain.tasks import TASKS, PathologicalConfig, PathologicalTask
from rnntrain.tasks.pathological import IGNORE, ORDER_SYMBOLS, TOLERANCE


def draw(n=400, seed=0, **config):
    task = PathologicalTask(PathologicalConfig(eval_size=4, **config), dtype=torch.float64)
    return task, *task.sample(n, torch.Generator().manual_seed(seed))


def marked(x):
    """(first, second) marked steps of each sequence (marker == 1)."""
    idx = (x[..., 1] == 1).nonzero()[:, 1].view(-1, 2)
    return idx[:, 0], idx[:, 1]


def test_martens_adding_markers_values_target_and_length():
    task, x, y = draw(problem="adding", length=100, variant="martens")
    assert 100 <= x.shape[1] <= 110 and x.shape[2] == 2
    assert ((x[..., 1] == 1).sum(1) == 2).all() and ((x[..., 1] != 0).sum(1) == 2).all()
    first, second = marked(x)
    assert first.max() < 10 and 10 <= second.min() and second.max() < 50  # [0, T/10), [T/10, T/2)
    assert 0 <= x[..., 0].min() and x[..., 0].max() <= 1
    rows = torch.arange(len(x))
    assert torch.allclose(y[:, 0], x[rows, first, 0] + x[rows, second, 0])


def test_hochreiter_adding_uses_end_markers_and_the_scaled_target():
    task, x, y = draw(problem="adding", length=100, variant="hochreiter")
    assert x[..., 0].min() < -0.9 and x[..., 0].max() > 0.9  # values in [-1, 1]
    ones = x[..., 1] == 1
    assert (ones.sum(1) == 2).all()
    first, second = marked(x)
    assert first.max() < 49 and second.max() < 49 and (ones[:, :10].sum(1) >= 1).all()
    end_marks = (x[:, 0, 1] == -1) | ones[:, 0]
    assert end_marks.all() and (x[:, -1, 1] == -1).all()
    counted = torch.where(ones, x[..., 0], torch.zeros_like(x[..., 0]))
    counted[:, 0] = 0  # a value marked at step 0 counts as 0
    assert torch.allclose(y[:, 0], 0.5 + counted.sum(1) / 4)
    assert 0 <= y.min() and y.max() <= 1


def test_le_adding_has_fixed_length_and_one_marker_per_half():
    _, x, y = draw(problem="adding", length=150, variant="le")
    assert x.shape[1] == 150
    first, second = marked(x)
    assert first.max() < 75 <= second.min()


@pytest.mark.parametrize("problem,expected", [
    ("multiplication", lambda a, b: a * b),
    ("xor", lambda a, b: (a != b).double()),
])
def test_multiplication_and_xor_targets(problem, expected):
    _, x, y = draw(problem=problem, length=50)
    first, second = marked(x)
    rows = torch.arange(len(x))
    assert torch.allclose(y[:, 0], expected(x[rows, first, 0], x[rows, second, 0]))
    if problem == "xor":
        assert set(x[..., 0].unique().tolist()) == {0.0, 1.0}


@pytest.mark.parametrize("problem,variant,windows,classes", [
    ("order2", "hochreiter", [(10, 20), (50, 60)], 4),
    ("order3", "hochreiter", [(10, 20), (33, 43), (66, 76)], 8),
    ("order2", "martens", [(20, 39), (100, 119)], 4),
    ("order3", "martens", [(20, 39), (60, 79), (120, 139)], 8),
])
def test_temporal_order_symbols_positions_and_classes(problem, variant, windows, classes):
    task, x, y = draw(problem=problem, length=200, variant=variant)
    sym = x.argmax(-1)  # (N, L)
    relevant = sym >= ORDER_SYMBOLS.index("X")
    relevant &= sym <= ORDER_SYMBOLS.index("Y")
    assert (relevant.sum(1) == len(windows)).all()
    pos = relevant.nonzero()[:, 1].view(len(x), -1)
    for j, (lo, hi) in enumerate(windows):
        assert lo <= pos[:, j].min() and pos[:, j].max() <= hi
    bits = (sym.gather(1, pos) == ORDER_SYMBOLS.index("Y")).long()  # X = 0, Y = 1
    assert (y == (bits * 2 ** torch.arange(len(windows) - 1, -1, -1)).sum(1)).all()
    assert set(y.tolist()) == set(range(classes)) and task.spec.output_size == classes
    if variant == "hochreiter":
        assert 100 <= x.shape[1] <= 110
        assert (sym[:, 0] == ORDER_SYMBOLS.index("B")).all() and (sym[:, -1] == ORDER_SYMBOLS.index("E")).all()


def test_random_permutation_asks_for_the_first_symbol():
    task, x, y = draw(problem="permutation", length=30)
    sym = x.argmax(-1)
    assert set(sym[:, 0].tolist()) == {0, 1} and sym[:, 1:].min() >= 2 and (y == sym[:, 0]).all()
    assert task.spec.output_size == 100 and not task.spec.per_step


@pytest.mark.parametrize("problem,n,K", [("memorize5", 5, 2), ("memorize20", 10, 4), ("copy", 10, 8)])
def test_memorisation_layout_and_targets(problem, n, K):
    task, x, y = draw(n=50, problem=problem, length=40)
    assert x.shape == (50, n + 40 + n, K + 2) and task.spec.per_step
    sym = x.argmax(-1)
    assert (sym[:, :n] < K).all() and (sym[:, n:n + 39] == K).all() and (sym[:, n + 39] == K + 1).all()
    assert (sym[:, -n:] == K).all()  # blanks while recalling
    assert (y[:, :-n] == IGNORE).all() and (y[:, -n:] == sym[:, :n]).all()
    assert n * torch.log2(torch.tensor(float(K))) >= {"memorize5": 5, "memorize20": 20, "copy": 30}[problem]


class Echo(torch.nn.Module):
    """Answers the target plus ``offset`` (real) or the target class (classes)."""

    def __init__(self, answers, offset=0.0):
        super().__init__()
        self.answers, self.offset, self.i = answers, offset, 0

    def forward(self, x, state=None):
        y = self.answers[self.i % len(self.answers)]
        self.i += 1
        return y + self.offset, None


@pytest.mark.parametrize("offset,wrong", [(0.039, 0.0), (-0.039, 0.0), (0.041, 1.0), (-0.041, 1.0)])
def test_a_real_answer_is_wrong_beyond_0_04(offset, wrong):
    assert TOLERANCE == 0.04
    task = PathologicalTask(PathologicalConfig(problem="adding", eval_size=300, eval_batch=100))
    answers = [y for _, y in task.eval_sets["test"]]
    assert task.evaluate(Echo(answers, offset), "test")["wrong_fraction"] == wrong


def test_memorisation_counts_wrong_recall_steps():
    task = PathologicalTask(PathologicalConfig(problem="memorize5", length=20, eval_size=10))
    x, y = task.eval_sets["test"][0]
    logits = torch.nn.functional.one_hot(y.clamp(min=0), 2).float()  # (N, L, 2), right everywhere
    logits[0, -1] = 1 - logits[0, -1]  # one recall step wrong
    assert task.evaluate(Echo([logits]), "test")["wrong_fraction"] == pytest.approx(1 / 50)


def test_training_batches_are_fresh_and_follow_the_generator():
    task = PathologicalTask(PathologicalConfig(problem="adding", length=20, epoch_batches=3, eval_size=8))
    a = [b.targets for b in task.batches("train", 4, generator=torch.Generator().manual_seed(5))]
    b = [b.targets for b in task.batches("train", 4, generator=torch.Generator().manual_seed(5))]
    assert len(a) == 3 and all(torch.equal(u, v) for u, v in zip(a, b)) and not torch.equal(a[0], a[1])
    val, test = task.eval_sets["val"][0][1], task.eval_sets["test"][0][1]
    assert not torch.equal(val, test) and task.split_size("test") == 8
    assert "pathological" in TASKS


def test_config_names_the_fix():
    with pytest.raises(UserError, match="unknown problem 'adder'"):
        PathologicalConfig(problem="adder")
    with pytest.raises(UserError, match="do not define 'xor'"):
        PathologicalConfig(problem="xor", variant="hochreiter")
    with pytest.raises(UserError, match="length must be >= 20"):
        PathologicalConfig(length=5)

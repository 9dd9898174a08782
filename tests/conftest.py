"""Shared fixtures: small, fast configurations of every layer."""
from __future__ import annotations

import pytest
import torch

import rnntrain


@pytest.fixture(autouse=True)
def _one_thread():
    # Tests are many tiny models: one thread avoids oversubscription on 2-core CI.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


POPULATION = ("ga", "pso", "anneal", "cmaes", "guess")
ONLINE = ("rtrl", "uoro", "snap1", "snap2", "crbp")


def algorithm_settings(algorithm: str) -> dict:
    """The config keys an algorithm needs to run at test size: a small population, the cell
    CRBP and the ESN train, forward-only layers for the online families, short CG runs."""
    out = {"algorithm.name": algorithm}
    if algorithm in POPULATION:
        out["algorithm.population"] = 4
    if algorithm in ONLINE:  # online learning runs forwards in time
        out["model.bidirectional"] = False
    if algorithm == "crbp":
        out["model.cell"] = "local"
    if algorithm == "esn":
        out["model.cell"] = "esn"
    if algorithm == "hf":  # every part of an outer iteration runs; 250 CG steps cost seconds
        out["algorithm.cg_max_iters"] = 10
    return out


def trains_or_refuses(config, refused: bool, fix: str):
    """Train ``config``; when ``refused``, assert it is refused in one line naming ``fix``
    and return None, else return the run."""
    from rnntrain.errors import UserError
    if refused:
        with pytest.raises(UserError) as e:
            rnntrain.train(config)
        assert "\n" not in str(e.value) and fix in str(e.value)
        return None
    return rnntrain.train(config)


def small_series_config(**overrides):
    """Sine forecasting with a small network: trains in about a second."""
    base = {"task.series": "sine", "task.length": 300, "task.window": 10, "model.hidden": 16,
            "optim.lr": 0.01, "train.epochs": 4, "train.batch_size": 32}
    base.update(overrides)
    return rnntrain.load_config(base=base)


def small_text_config(path, **overrides):
    base = {"task.kind": "text", "task.text": str(path), "task.seq_len": 20, "task.sample_length": 40,
            "model.hidden": 32, "optim.lr": 0.01, "train.epochs": 3, "train.batch_size": 8}
    base.update(overrides)
    return rnntrain.load_config(base=base)


@pytest.fixture
def text_file(tmp_path):
    """A tiny corpus with an obvious pattern (learnable in seconds)."""
    path = tmp_path / "corpus.txt"
    path.write_text("the cat sat on the mat. " * 120, encoding="utf-8")
    return path


def weights_equal(a, b) -> bool:
    """Two models hold bit-identical weights (same keys, torch.equal on every tensor)."""
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def interrupt_after(n):
    """A round callback that interrupts a run (as Ctrl-C would) after round ``n``."""
    def callback(round_, row):
        if round_ == n:
            raise KeyboardInterrupt
    return callback


def assert_resume_equals_uninterrupted(config, tmp_path, *, after: int = 1, compare=("train_loss",)):
    """The resume promise, for any algorithm: a run interrupted after round ``after`` and
    resumed from its run directory ends with exactly the weights (and the per-round
    ``compare`` metrics) of the same run left alone. Returns (whole, resumed)."""
    whole = rnntrain.train(config, tmp_path / "whole")
    with pytest.raises(KeyboardInterrupt):
        rnntrain.train(config, tmp_path / "cut", callbacks=[interrupt_after(after)])
    resumed = rnntrain.resume(tmp_path / "cut")
    assert weights_equal(whole.model, resumed.model)
    for key in compare:
        assert [r[key] for r in whole.history] == [r[key] for r in resumed.history], key
    return whole, resumed


def pytest_collection_modifyitems(config, items):
    """The tests marked slow run first, longest first (``slow(seconds)``, about 10 unless
    said): a long test that starts last runs alone at the end while the other worker sits
    idle (``--dist worksteal`` rebalances queues of short tests, not one long test)."""
    def seconds(item) -> float:
        mark = item.get_closest_marker("slow")
        return 0.0 if mark is None else (mark.args[0] if mark.args else 10.0)
    items.sort(key=lambda item: -seconds(item))  # stable: otherwise file order

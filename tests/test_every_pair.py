"""Every algorithm x every task kind x every cell: one round trains, or the run is refused
before anything is written, in one line that names what would work. Never a traceback.

The expected refusals are the README's compatibility tables written as rules; each family
and task says what it can take (``Algorithm.refusal``, ``TaskSpec``), so this table is
the specification the protocols are checked against.
"""
from __future__ import annotations

import math
import warnings

import pytest

import rnntrain
from rnntrain.algorithms import ALGORITHMS
from rnntrain.errors import UserError
from rnntrain.models.sequence_model import CELL_NAMES
from rnntrain.tasks import TASKS

from conftest import ONLINE, POPULATION

# the smallest instance of every task kind that still exercises its data path
TASK_SIZES = {
    "forecast": {"task.length": 200, "task.window": 8},
    "text": {"task.seq_len": 10, "task.sample_length": 10},
    "language": {"task.train_size": 20, "task.eval_size": 10, "task.max_n": 4, "task.test_max_n": 5},
    "stream": {"task.length": 400, "task.switch_every": 100, "task.seq_len": 10},
    "guessing": {"task.length": 10, "task.examples": 20},
    "pathological": {"task.length": 20, "task.epoch_batches": 2, "task.eval_size": 20, "task.eval_batch": 10},
    "classify": {"task.size": 30}, "regress": {"task.size": 30}, "tag": {"task.size": 30},
    "transcribe": {"task.size": 30}, "seq2seq": {"task.size": 30},
}
UNALIGNED = {"transcribe", "seq2seq"}  # a label sequence not aligned with the steps (CTC, decoder)


def expected_refusal(task: str, algorithm: str, cell: str):
    """The fix the refusal must name, or None when the pair trains."""
    if algorithm == "esn":  # fits a fixed reservoir's linear readout to aligned targets
        return "--algorithm bptt" if task in UNALIGNED else (None if cell == "esn" else "--cell esn")
    if algorithm in ONLINE:  # credit step by step, forwards, to trainable recurrent weights
        if task in UNALIGNED:
            return "--algorithm bptt"
        if algorithm == "crbp" and cell != "local":
            return "--cell local"
        if cell == "esn":
            return "--algorithm esn"
    if cell == "esn" and task == "seq2seq":  # both cores of an encoder-decoder are trained
        return "--cell rnn"
    if algorithm == "hf" and task == "transcribe":  # CTC's loss is not convex in the outputs
        return "--algorithm bptt"
    return None


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """400 words of a small vocabulary (the built-in corpus is a book: slow to read 858 times)."""
    words = ("the", "cat", "sat", "on", "a", "mat", "dog", "ran")
    path = tmp_path_factory.mktemp("pairs") / "corpus.txt"
    path.write_text(" ".join(words[(7 * i + i // 3) % len(words)] for i in range(400)), encoding="utf-8")
    return path


def test_the_table_covers_every_registered_task_algorithm_and_cell():
    assert set(TASK_SIZES) == set(TASKS)
    assert {"bptt", "rtrl", "uoro", "snap1", "snap2", "crbp", "hf", "esn", *POPULATION} == set(ALGORITHMS)
    assert set(CELL_NAMES) == {"rnn", "rnn-relu", "lstm", "gru", "local", "esn", "ln-lstm", "ln-gru",
                               "peephole", "indrnn", "ctrnn"}


@pytest.mark.parametrize("cell", sorted(CELL_NAMES))
@pytest.mark.parametrize("algorithm", sorted(ALGORITHMS))
@pytest.mark.parametrize("task", sorted(TASKS))
def test_one_round_trains_or_is_refused_in_one_line_before_anything_is_written(tmp_path, corpus, task, algorithm,
                                                                              cell):
    sizes = {**TASK_SIZES[task], **({"task.text": str(corpus)} if task == "text" else {})}
    base = {"task.kind": task, **sizes, "algorithm.name": algorithm, "model.cell": cell,
            "model.hidden": 4, "train.epochs": 1, "train.batch_size": 8}
    if algorithm in POPULATION:
        base["algorithm.population"] = 4
    if algorithm == "hf":  # fewer, shorter outer iterations, each still running every part
        base.update({"algorithm.cg_max_iters": 10, "train.batch_size": 64})  # (a round took 2-11 s)
    config = rnntrain.load_config(base=base)
    fix = expected_refusal(task, algorithm, cell)
    if fix is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. "no validation metric": not what is tested here
            run = rnntrain.train(config)
        assert run.history[-1]["round"] == 1
        assert math.isfinite(run.summary["metrics"]["val"]["loss"])
        return
    out = tmp_path / "run"
    with pytest.raises(UserError) as e:
        rnntrain.train(config, out)
    message = str(e.value)
    assert "\n" not in message and fix in message, message
    assert not out.exists()  # refused before the run directory was made

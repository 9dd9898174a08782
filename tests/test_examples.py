"""Every config in examples/ runs end to end (with few epochs) and means what it says."""
from __future__ import annotations

from pathlib import Path

import pytest

import rnntrain
from rnntrain.training.build import make_task

EXAMPLES = sorted((Path(__file__).parent.parent / "examples").glob("*.toml"))


def test_there_are_examples_for_both_seeds_the_oscillator_and_text():
    names = {p.stem for p in EXAMPLES}
    assert {"seed_pytorch_sine", "seed_keras_noisy_sine", "oscillator", "text_char_lstm"} <= names


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_trains_for_two_epochs(path, tmp_path, text_file):
    config = rnntrain.load_config(path)
    base = {"train.epochs": 2}
    if config.task_kind == "text":
        base.update({"task.text": str(text_file), "model.hidden": 32, "task.seq_len": 20})
    result = rnntrain.train(rnntrain.load_config(path, base=base), tmp_path / "run")
    assert result.summary["rounds"] == 2
    assert (tmp_path / "run" / "loss.png").is_file()
    first = result.history[0]["train_loss"]
    assert result.history[-1]["train_loss"] < first


def test_the_default_config_is_the_seed_pytorch_example():
    default = rnntrain.load_config()
    seed = rnntrain.load_config(EXAMPLES[[p.stem for p in EXAMPLES].index("seed_pytorch_sine")])
    assert default == seed
    assert (default.task.series, default.task.window, default.model.hidden, default.optim.lr,
            default.train.batch_size, default.train.epochs) == ("sine", 20, 64, 1e-3, 32, 100)


def test_the_keras_example_uses_its_architecture():
    config = rnntrain.load_config(EXAMPLES[[p.stem for p in EXAMPLES].index("seed_keras_noisy_sine")])
    model = rnntrain.build_model(config.model, make_task(config).spec)
    assert model.rnn.nonlinearity == "relu" and model.rnn.hidden_size == 32
    assert [m.out_features for m in model.readout.head if hasattr(m, "out_features")] == [8, 1]

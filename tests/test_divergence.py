"""Training that goes wrong: a loss or a weight that stops being finite stops the run in that
round, with one line naming the round and the likely fixes; the weights and the checkpoint
stay those of the last good round, and summary.json stays valid JSON."""
import json

import pytest
import torch

import rnntrain
from rnntrain.cli.main import main
from rnntrain.training import interrupts
from rnntrain.training.checkpoint import load_checkpoint


def strict_json(path):
    """json.loads that refuses NaN and Infinity, as JSON itself does."""
    return json.loads(path.read_text(), parse_constant=lambda c: pytest.fail(f"{c} in {path}"))


def test_an_exploding_learning_rate_stops_in_round_1_with_one_line(tmp_path, capsys):
    run = tmp_path / "run"
    code = main(["train", "--optimizer", "sgd", "--lr", "1e6", "--clip", "0", "--epochs", "3", "--hidden", "8",
                 "--out", str(run), "--quiet"])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1
    assert "diverged in round 1" in err and "optim.lr" in err and "optim.clip" in err
    summary = strict_json(run / "summary.json")
    assert summary["diverged_round"] == 1 and summary["rounds"] == 0
    assert all(v is None or v == v for v in summary["metrics"]["val"].values())


@pytest.mark.parametrize("long_rounds", [True, False], ids=["long_rounds", "short_rounds"])
def test_a_later_divergence_keeps_the_last_good_round_and_a_good_checkpoint(tmp_path, monkeypatch, long_rounds):
    """The weights are round 2's. The checkpoint is round 2's when rounds are long (the trainer
    keeps a copy of each finished round); when they are short it keeps no copy (a signal waits
    for the round's end instead: training/interrupts.py) and the checkpoint is the last one
    saved, round 1's, from which a resumed run diverges in the same round again."""
    monkeypatch.setattr(interrupts, "DEFER_SECONDS", 0.0 if long_rounds else 1e9)
    config = rnntrain.load_config(base={"model.hidden": 8, "train.epochs": 6, "task.length": 200})
    def poison(trainer):
        original = trainer.algorithm.run_round

        def poisoned(on_step=None):
            metrics = original(on_step)
            if trainer.round == 2:  # round 3 ends with a weight gone to NaN
                with torch.no_grad():
                    next(trainer.model.parameters())[0].fill_(float("nan"))
            return metrics
        trainer.algorithm.run_round = poisoned
        return trainer

    trainer = poison(rnntrain.Trainer(config, tmp_path / "run"))
    trainer.run.create(config)
    result = trainer.fit()
    assert result.summary["diverged_round"] == 3 and result.summary["rounds"] == 2
    assert "round 3" in result.summary["stop_reason"]
    state = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    assert state["round"] == (2 if long_rounds else 1)
    for p in trainer.model.parameters():
        assert torch.isfinite(p).all()
    strict_json(tmp_path / "run" / "summary.json")
    again = poison(rnntrain.Trainer(config, tmp_path / "run"))
    again.load_state_dict(state)
    assert again.fit().summary["diverged_round"] == 3
    assert all(torch.equal(a, b) for a, b in zip(again.model.parameters(), trainer.model.parameters()))

"""`rnntrain analyze gradients|dynamics RUN_DIR` and the [monitor] gradient-flow records."""
from __future__ import annotations

import json

import pytest

import rnntrain
from rnntrain.analysis.gradient_flow import read_rows
from rnntrain.cli.main import main
from conftest import small_series_config


@pytest.mark.parametrize("cell", ["rnn", "rnn-relu", "lstm", "gru"])
def test_analyze_commands_write_figures_for_every_cell(tmp_path, cell, capsys):
    run = tmp_path / "run"
    layers = 2 if cell == "lstm" else 1
    rnntrain.train(small_series_config(**{"model.cell": cell, "model.layers": layers,
                                          "train.epochs": 3, "monitor.gradient_flow_every": 1}), run)
    rows = read_rows(run / "gradient_flow.csv")
    assert sorted({r["round"] for r in rows}) == [1, 2, 3]
    # window 10: lags 0..10 and steps 0..10 per round
    assert sum(r["quantity"] == "log10_sigma" for r in rows) == 3 * 11
    assert main(["analyze", "gradients", str(run)]) == 0
    assert main(["analyze", "dynamics", str(run), "--starts", "4", "--steps", "50",
                 "--lyapunov-steps", "200"]) == 0
    out = run / "analysis"
    for name in ("gradient_curves.png", "gradient_heatmap.png", "gradient_norm_heatmap.png",
                 "gradients.csv", "gradients.json", "dynamics_trajectories.png",
                 "dynamics_eigenvalues.png", "dynamics_lyapunov.png", "dynamics.json"):
        assert (out / name).stat().st_size > 0, name
    dyn = json.loads((out / "dynamics.json").read_text())
    D = 2 * layers * 16 if cell == "lstm" else 16  # the concatenated (h, c) state of every layer
    assert dyn["state_dim"] == D and len(dyn["lyapunov"]["exponents"]) == D
    assert dyn["behaviour"]["kind"] in ("point attractor", "periodic", "quasi-periodic", "chaotic", "unresolved")
    grads = json.loads((out / "gradients.json").read_text())
    assert grads["regime"] in ("vanishing", "exploding", "neutral") and grads["steps"] == 10
    assert "gradient flow:" in capsys.readouterr().out


def test_gradient_records_survive_an_interrupted_and_resumed_run(tmp_path):
    run = tmp_path / "run"
    config = small_series_config(**{"train.epochs": 4, "monitor.gradient_flow_every": 2})

    def stop_after_3(round_, row):
        if round_ == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        rnntrain.train(config, run, callbacks=[stop_after_3])
    rnntrain.resume(run)
    assert sorted({r["round"] for r in read_rows(run / "gradient_flow.csv")}) == [2, 4]


def test_analyze_names_the_problem_for_bad_input(tmp_path, capsys):
    for args in (["analyze", str(tmp_path)], ["analyze"]):  # the run directory without what to analyze
        with pytest.raises(SystemExit) as e:
            main(args)
        err = capsys.readouterr().err
        assert e.value.code == 2 and err.count("\n") == 1 and "gradients|dynamics" in err, err
    assert main(["analyze", "dynamics", str(tmp_path / "nothing")]) == 2
    assert "run directory not found" in capsys.readouterr().err
    run = tmp_path / "bi"
    rnntrain.train(small_series_config(**{"model.bidirectional": True, "train.epochs": 1}), run)
    assert main(["analyze", "gradients", str(run)]) == 2
    assert "bidirectional" in capsys.readouterr().err
    assert main(["analyze", "dynamics", str(run), "--token", "3"]) == 2


def test_monitor_config_is_validated():
    with pytest.raises(rnntrain.UserError, match="gradient_flow_every must be >= 0"):
        small_series_config(**{"monitor.gradient_flow_every": -1})
    with pytest.raises(rnntrain.UserError, match="did you mean 'gradient_flow_every'"):
        small_series_config(**{"monitor.gradient_flow": 1})

"""Rolling-origin backtests: folds tile the end of the series, each fold is scored on its own
rows with the baselines, a refit trains only on the rows before its fold, and the CLI writes
the table or refuses in one line."""
import csv
import io
import json

import numpy as np
import pytest

import rnntrain
from rnntrain.cli.main import main
from rnntrain.config.run import read_toml
from rnntrain.training.backtest import backtest


@pytest.fixture
def ramp_csv(tmp_path):
    path = tmp_path / "ramp.csv"
    path.write_text("x\n" + "\n".join(str(float(t)) for t in range(120)))
    return path


def quick(path, **extra):
    return rnntrain.load_config(base={"task.data": str(path), "task.window": 5, "model.hidden": 8,
                                      "train.epochs": 3, **extra})


def test_folds_tile_the_end_and_each_is_scored_against_the_baselines_on_its_own_rows(ramp_csv, tmp_path):
    result = backtest(quick(ramp_csv), 3, fold_size=6, out_dir=tmp_path / "bt")
    assert [(r["fold"], r["first_row"], r["last_row"]) for r in result.rows] == [(1, 102, 107), (2, 108, 113),
                                                                              (3, 114, 119)]
    assert all(r["windows"] == 6 for r in result.rows)  # every fold row forecast once (horizon 1)
    # persistence on a ramp is off by exactly one step everywhere; the mean is the training mean
    assert all(r["persistence_mae"] == pytest.approx(1.0) for r in result.rows)
    assert result.rows[0]["mean_mae"] < result.rows[2]["mean_mae"]
    assert result.mean()["persistence_mae"] == pytest.approx(1.0)
    # one model (no refit), trained on the rows before the first fold
    assert read_toml(tmp_path / "bt" / "model" / "config.toml")["task"]["end"] == 108
    table = result.to_markdown()
    assert table.count("\n") == 2 + 3 + 1 and "| mean |" in table


def test_a_series_without_a_test_split_backtests_folds_of_its_validation_rows():
    """A built-in series splits train:val only; the default fold is its validation rows over
    K (a fold of one horizon, one window, had no NRMSE), tiling the series' end."""
    config = rnntrain.load_config(base={"task.length": 300, "task.window": 8, "model.hidden": 4,
                                        "train.epochs": 1})
    result = backtest(config, 3)
    assert [(r["first_row"], r["last_row"]) for r in result.rows] == [(240, 259), (260, 279), (280, 299)]
    assert all(r["windows"] == 20 and np.isfinite(r["nrmse"]) for r in result.rows)


def test_a_refit_trains_each_fold_on_the_rows_before_it_only(ramp_csv, tmp_path):
    result = backtest(quick(ramp_csv), 2, refit=True, fold_size=10, out_dir=tmp_path / "bt")
    for k, row in enumerate(result.rows, start=1):
        task = read_toml(tmp_path / "bt" / f"fold-{k}" / "config.toml")["task"]
        assert task["end"] == row["last_row"] + 1 and task["test_rows"] == 10
        summary = (tmp_path / "bt" / f"fold-{k}" / "summary.json").read_text()
        assert '"test"' in summary
    assert result.refit and [r["first_row"] for r in result.rows] == [100, 110]


def test_a_runs_backtest_cuts_its_test_split_and_uses_its_model(ramp_csv, tmp_path):
    run = tmp_path / "run"
    rnntrain.train(quick(ramp_csv), run)  # 120 rows: test split = rows 102..119
    result = backtest(run, 3)
    assert [r["first_row"] for r in result.rows] == [102, 108, 114]
    # the folds together are the test split: the same windows, so the same mean error
    summary_mae = json.loads((run / "summary.json").read_text())["metrics"]["test"]["mae"]
    assert np.mean([r["mae"] for r in result.rows]) == pytest.approx(summary_mae, rel=1e-5)


def test_the_cli_writes_the_table_and_refuses_bad_requests_in_one_line(ramp_csv, tmp_path, capsys):
    out = tmp_path / "bt"
    assert main(["backtest", "--data", str(ramp_csv), "--window", "5", "--epochs", "2", "--folds", "2",
                 "--out", str(out)]) == 0
    rows = list(csv.DictReader(io.StringIO((out / "backtest.csv").read_text())))
    assert len(rows) == 2 and {"fold", "first_row", "mase", "persistence_mase"} <= set(rows[0])
    assert "| mean |" in (out / "backtest.md").read_text()
    capsys.readouterr()
    assert main(["backtest", "--data", str(ramp_csv), "--folds", "40", "--fold-size", "10"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "fewer --folds" in err
    assert main(["backtest", str(tmp_path / "nothing.toml")]) == 2
    assert "neither a run directory nor a config" in capsys.readouterr().err
    assert main(["backtest", "--task", "classify", "--dataset", "waves", "--epochs", "1"]) == 2
    assert "rolling origins" in capsys.readouterr().err

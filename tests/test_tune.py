"""`rnntrain tune`: an Optuna study over any config key, pruned per round, kept in SQLite."""
from __future__ import annotations

import csv
import statistics

import pytest

import rnntrain
from rnntrain.cli.main import main
from rnntrain.config.run import read_toml
from rnntrain.training.tune import Param

optuna = pytest.importorskip("optuna")

BASE = ["--hidden", "8", "--set", "train.epochs=4", "--quiet", "--no-figures"]  # trials draw no figures


def rows(out):
    with open(out / "trials.csv", newline="") as f:
        return list(csv.DictReader(f))


def study_of(db, name="rnntrain"):
    return optuna.load_study(study_name=name, storage=f"sqlite:///{db}")


def test_a_pruned_study_in_sqlite_resumes_where_it_stopped(tmp_path, capsys):
    db, out = tmp_path / "study.db", tmp_path / "tune"
    args = ["tune", *BASE, "--param", "optim.lr=choice:0.01,0.000001", "--param", "model.cell=choice:rnn,gru",
            "--storage", f"sqlite:///{db}", "--prune-after", "1", "--out", str(out)]
    assert main([*args, "--trials", "2"]) == 0
    assert len(study_of(db).trials) == 2
    assert main([*args, "--trials", "3"]) == 0  # the same study, one more trial
    trials = study_of(db).trials
    assert [t.number for t in trials] == [0, 1, 2]
    assert {t.state for t in trials} <= {optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED}
    assert trials[0].state == optuna.trial.TrialState.COMPLETE  # nothing to compare the first with
    assert_median_rule(trials)
    table = rows(out)
    assert [r["state"] for r in table] == [t.state.name.lower() for t in trials]
    best = study_of(db).best_trial
    config = read_toml(out / "best.toml")  # the best trial's whole config, as its run wrote it
    assert config["optim"]["lr"] == best.params["optim.lr"] and config["model"]["cell"] == best.params["model.cell"]
    assert float(table[best.number]["val_loss"]) == pytest.approx(best.value)
    assert (out / "trials" / f"trial-{best.number:04d}" / "report.html").is_file()
    assert (out / "tune_history.png").is_file()  # the study's own plots, with --no-figures for its trials
    assert not list((out / "trials").rglob("*.png"))
    assert "best: trial" in capsys.readouterr().out


def assert_median_rule(trials):
    """A pruned trial was worse than the median of the earlier trials at the round it stopped."""
    for t in trials:
        if t.state == optuna.trial.TrialState.PRUNED:
            step = max(t.intermediate_values)
            before = [u.intermediate_values[step] for u in trials[:t.number] if step in u.intermediate_values]
            assert t.intermediate_values[step] > statistics.median(before)
            assert step < 4  # stopped before its last round


def test_a_study_in_memory_repeats_and_prunes_poor_trials(tmp_path):
    """Seeded by the config's seed (a shared storage adds each worker's own, so that workers
    propose different points): the same study twice is the same trials, and with a learning
    rate that cannot learn among the choices some trial is pruned."""
    base = rnntrain.raw_config(overrides=["model.hidden=8", "train.epochs=4", "seed=4"])
    space = ["optim.lr=choice:0.01,0.000001", "model.cell=choice:rnn,gru"]  # seed 4: lr 1e-6 third
    first, again = (rnntrain.tune(base, space, trials=3, out_dir=tmp_path / name, prune_after=1)
                    for name in ("a", "b"))
    assert [t.params for t in first.trials] == [t.params for t in again.trials]
    assert [t.value for t in first.trials] == [t.value for t in again.trials]
    assert optuna.trial.TrialState.PRUNED in {t.state for t in first.trials}
    assert_median_rule(first.trials)


def test_a_study_chooses_between_families_and_their_own_keys(tmp_path):
    """algorithm.truncation is sampled only where the algorithm is BPTT; an algorithm that
    refuses the task fails its trial, and the study goes on."""
    base = rnntrain.raw_config(overrides=["model.hidden=6", "train.epochs=2", "algorithm.population=4"])
    study = rnntrain.tune(base, ["algorithm.name=choice:bptt,ga,crbp", "algorithm.truncation=int:2:10"],
                          trials=6, out_dir=tmp_path, prune=False)
    names = [t.params["algorithm.name"] for t in study.trials]
    assert len(set(names)) >= 2
    for t in study.trials:
        assert ("algorithm.truncation" in t.params) == (t.params["algorithm.name"] == "bptt")
        if t.params["algorithm.name"] == "crbp":  # refused: the local cell only
            assert t.state == optuna.trial.TrialState.FAIL and "--cell local" in t.user_attrs["error"]
        else:
            assert t.state == optuna.trial.TrialState.COMPLETE
    for r in rows(tmp_path):
        assert r["note"] == ("" if r["state"] == "complete" else r["note"]) and r["run"]


def test_a_metric_where_higher_is_better_is_maximised(tmp_path):
    base = rnntrain.raw_config(overrides=["task.kind='classify'", "model.hidden=6", "train.epochs=1",
                                          "train.select='accuracy'"])
    study = rnntrain.tune(base, ["optim.lr=float:1e-3:1e-1:log"], trials=2, out_dir=tmp_path, prune=False)
    assert study.direction == optuna.study.StudyDirection.MAXIMIZE
    assert "val_accuracy" in rows(tmp_path)[0]


@pytest.mark.parametrize("param, says", [
    ("model.hiden=int:2:8", "no such key"),
    ("optim.lr=float:0.1:0.01", "LOW < HIGH"),
    ("optim.lr=float:0:1:log", "LOW > 0"),
    ("model.cell=choice:", "choice needs values"),
    ("model.hidden=normal:3", "SPEC is"),
    ("model.hidden", "KEY=SPEC"),
])
def test_a_bad_search_space_is_one_line_before_any_trial(tmp_path, capsys, param, says):
    assert main(["tune", "--trials", "2", "--param", param, "--out", str(tmp_path / "t")]) == 2
    err = capsys.readouterr().err.strip()
    assert says in err and "\n" not in err
    assert not (tmp_path / "t" / "trials" / "trial-0000").exists()


def test_specs_parse_to_optuna_distributions():
    assert Param.parse("optim.lr=float:1e-4:1e-1:log") == Param("optim.lr", "float", 1e-4, 1e-1, True)
    assert Param.parse("model.hidden=int:8:128") == Param("model.hidden", "int", 8, 128, False)
    assert Param.parse("model.bidirectional=choice:true,false").choices == (True, False)

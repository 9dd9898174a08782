"""Hyperparameter search on Optuna: ``rnntrain tune [CONFIG] --trials N --param KEY=SPEC ...``.

Each trial is an ordinary run (``OUT/trials/trial-NNNN``, so ``rnntrain compare`` and
``report.html`` work on trials as on any run) of the base config with the searched keys set by
Optuna's sampler (TPE, seeded by the config's seed). Any config key can be searched, including
``algorithm.name``, so one study can choose between families; a key that the sampled algorithm
or task does not have (``algorithm.truncation`` for CMA-ES) is not sampled in that trial
(Optuna's define-by-run spaces). A SPEC is one of::

    float:LOW:HIGH[:log]      e.g. optim.lr=float:1e-4:1e-1:log
    int:LOW:HIGH[:log]        e.g. model.hidden=int:8:128:log
    choice:A,B,...            e.g. algorithm.name=choice:bptt,uoro,cmaes (values read as TOML)

The sampler is seeded by the config's seed (a study in memory repeats), and with a shared
storage also by each worker's host and process, so that workers propose different points.
The objective is the validation metric that selects a run's best round (``train.select``;
``--metric`` names another), minimised or, for accuracy-like metrics, maximised. After every
round the trial reports it, and Optuna's median pruner stops trials worse than the median of
earlier trials at the same round (after ``prune_after`` finished trials). A trial whose run is
refused (an algorithm that cannot train the task) or diverges fails and the study goes on.

Studies live in Optuna's storage: in memory, or an RDB URL (``sqlite:///study.db``, a
PostgreSQL/MySQL URL shared by several machines). With a storage, ``--trials N`` is the size of
the study: every process that runs the command works on it until N trials have finished, and
running it again after a crash continues it (a trial whose process died is marked failed by
Optuna's heartbeat and run again).

What it writes into ``out``: ``best.toml`` (the best trial's full config), ``trials.csv``
(every trial: state, value, parameters, its run directory) and Optuna's matplotlib plots
(optimisation history, intermediate values, parameter importances).
"""
from __future__ import annotations

import csv
import math
import os
import re
import socket
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from ..config.run import from_dict, parse_value, set_path
from ..errors import UserError
from ..tasks.base import HIGHER_IS_BETTER

HEARTBEAT = 30  # seconds between a running trial's heartbeats in an RDB storage
GRACE = 120  # a trial silent this long (its process died) is failed, and run again once


@dataclass(frozen=True)
class Param:
    """One searched key: ``kind`` float | int | choice, its range or choices, log scale."""

    key: str
    kind: str
    low: Any = None
    high: Any = None
    log: bool = False
    choices: Tuple[Any, ...] = ()

    @classmethod
    def parse(cls, text: str) -> "Param":
        example = "e.g. optim.lr=float:1e-4:1e-1:log, model.hidden=int:8:128, model.cell=choice:lstm,gru"
        if "=" not in text:
            raise UserError(f"bad --param '{text}': expected KEY=SPEC ({example})")
        key, spec = (s.strip() for s in text.split("=", 1))
        kind, _, rest = spec.partition(":")
        if kind == "choice":
            choices = tuple(parse_value(c.strip()) for c in rest.split(",") if c.strip())
            if not choices:
                raise UserError(f"bad --param '{text}': choice needs values, e.g. choice:lstm,gru")
            return cls(key, kind, choices=choices)
        if kind not in ("float", "int"):
            raise UserError(f"bad --param '{text}': SPEC is float:LOW:HIGH[:log], int:LOW:HIGH[:log] "
                            f"or choice:A,B,... ({example})")
        parts = rest.split(":")
        log = parts[-1] == "log"
        if log:
            parts = parts[:-1]
        try:
            low, high = (float(p) if kind == "float" else int(p) for p in parts)
        except ValueError:
            raise UserError(f"bad --param '{text}': {kind}:LOW:HIGH needs two {kind} bounds") from None
        if not low < high or (log and low <= 0):
            raise UserError(f"bad --param '{text}': need LOW < HIGH{' and LOW > 0 on a log scale' if log else ''}")
        return cls(key, kind, low, high, log)

    @property
    def first(self) -> Any:
        return self.choices[0] if self.kind == "choice" else self.low

    def suggest(self, trial) -> Any:
        if self.kind == "choice":
            return trial.suggest_categorical(self.key, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(self.key, self.low, self.high, log=self.log)
        return trial.suggest_float(self.key, self.low, self.high, log=self.log)


def _copy(data: Mapping[str, Any]) -> Dict[str, Any]:
    return {k: _copy(v) if isinstance(v, Mapping) else v for k, v in data.items()}


def _inapplicable(error: UserError) -> Optional[str]:
    """The key a config error says does not apply to the chosen algorithm or task, or None
    (config/schema.py's words)."""
    found = re.match(r"'([\w.]+)' does not apply with", str(error))
    return found.group(1) if found else None


def _resolve(data: Mapping[str, Any], keep: Optional[str] = None):
    """``from_dict(data)`` with each key that does not apply to the chosen algorithm left out
    (a base may carry settings for several families: ``algorithm.population`` is dropped from a
    BPTT trial). KeyError(``keep``) when ``keep`` itself does not apply."""
    data = _copy(data)
    while True:
        try:
            return from_dict(data)
        except UserError as e:
            key = _inapplicable(e)
            if key is None:
                if keep is not None and f"unknown config key '{keep}'" in str(e):
                    raise KeyError(keep) from None
                raise
            if key == keep:
                raise KeyError(keep) from None
            *tables, leaf = key.split(".")
            node = data
            for t in tables:
                node = node[t]
            del node[leaf]


def _applies(data: Mapping[str, Any], key: str, value: Any) -> bool:
    """Whether ``key`` exists in the config ``data`` makes (not algorithm.truncation when the
    algorithm is CMA-ES). Other errors of the config are not this question's: True."""
    try:
        _resolve(_with(data, key, value), keep=key)
    except KeyError:
        return False
    except UserError:
        pass
    return True


def _sampled_config(trial, base: Mapping[str, Any], params: Sequence[Param]):
    """The trial's config: ``base`` with each applicable param's suggestion set, in order."""
    data = _copy(base)
    for p in params:
        if _applies(data, p.key, p.first):
            set_path(data, p.key, p.suggest(trial))
    return _resolve(data)


def _metric(config, name: Optional[str]) -> str:
    if name:
        return name[4:] if name.startswith("val_") else name
    from ..tasks import TASKS
    chosen = config.train.select
    return TASKS[config.task_kind][1].selection if chosen == "auto" else chosen


def tune(base: Mapping[str, Any], params: Sequence[Union[str, Param]], trials: int, out_dir: Union[str, Path], *,
         storage: Optional[str] = None, study_name: str = "rnntrain", metric: Optional[str] = None,
         prune_after: int = 5, prune: bool = True, timeout: Optional[float] = None, progress: str = "off"):
    """Run (or continue) a study; returns the ``optuna.Study``. ``base`` is a raw config dict
    (``rnntrain.config.run.raw_config``); see the module docstring for the rest."""
    try:
        import optuna
    except ImportError:
        raise UserError("rnntrain tune needs optuna: pip install 'rnntrain[tune]'") from None
    from .trainer import train

    params = [p if isinstance(p, Param) else Param.parse(p) for p in params]
    if not params:
        raise UserError("give at least one --param KEY=SPEC to search (e.g. --param optim.lr=float:1e-4:1e-1:log)")
    if trials < 1:
        raise UserError(f"--trials must be at least 1, got {trials}")
    for p in params:  # every key exists for the base config or for one of the searched choices
        variants = [base] + [_with(base, q.key, c) for q in params if q.kind == "choice" and q is not p
                             for c in q.choices]
        if not any(_applies(v, p.key, p.first) for v in variants):
            raise UserError(f"--param {p.key}: this config has no such key (the keys are those of a "
                            f"run's config.toml)")
    # the first value of every range: the whole config is valid before the study starts
    config0 = _sampled_config(optuna.trial.FixedTrial({p.key: p.first for p in params}), base, params)
    name = _metric(config0, metric)
    direction = "maximize" if name in HIGHER_IS_BETTER else "minimize"
    out = Path(out_dir)
    (out / "trials").mkdir(parents=True, exist_ok=True)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    store = None
    if storage:
        retry = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None) or \
            optuna.storages.RetryFailedTrialCallback  # (its name before Optuna 4.9)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Optuna calls its heartbeat experimental
            try:
                store = optuna.storages.RDBStorage(storage, heartbeat_interval=HEARTBEAT, grace_period=GRACE,
                                                   heartbeat_stale_trial_callback=retry(max_retry=1))
            except (ValueError, ImportError) as e:
                raise UserError(f"--storage {storage}: {str(e).splitlines()[0]} (e.g. sqlite:///study.db)") from None
            except Exception as e:  # sqlalchemy's errors: a URL it cannot open
                raise UserError(f"--storage {storage}: cannot open it ({type(e).__name__}); "
                                f"use e.g. sqlite:///study.db") from None
    pruner = optuna.pruners.MedianPruner(n_startup_trials=prune_after) if prune else optuna.pruners.NopPruner()
    # the sampler's seed: the config's, so a study in memory repeats; with a shared storage,
    # each worker's own too (the same seed everywhere would propose the same first points)
    seed = config0.seed if not storage else hash((config0.seed, socket.gethostname(), os.getpid())) % 2 ** 31
    try:
        study = optuna.create_study(storage=store, study_name=study_name, load_if_exists=True, direction=direction,
                                    sampler=optuna.samplers.TPESampler(seed=seed), pruner=pruner)
    except ValueError as e:  # e.g. an existing study with the other direction
        raise UserError(f"study '{study_name}': {e}") from None

    def objective(trial) -> float:
        config = _sampled_config(trial, base, params)
        run_dir = out / "trials" / f"trial-{trial.number:04d}"
        trial.set_user_attr("run", str(run_dir))

        def report(round_: int, row: Dict[str, Any]) -> None:
            value = row.get(f"val_{name}")
            if value is None or not math.isfinite(value):
                return
            trial.report(value, round_)
            if trial.should_prune():
                raise optuna.TrialPruned(f"round {round_}: val_{name} = {value:.4g}")

        try:
            result = train(config, run_dir, overwrite=True, progress=progress, callbacks=[report])
        except UserError as e:  # refused or bad data: this trial fails, the study goes on
            trial.set_user_attr("error", str(e))
            raise _Failed(str(e)) from None
        value = result.summary.get("metrics", {}).get("val", {}).get(name)
        if value is None or not math.isfinite(value):
            raise _Failed(f"no finite val_{name}: {result.summary.get('stop_reason')}")
        return float(value)

    done = optuna.study.MaxTrialsCallback(trials, states=(optuna.trial.TrialState.COMPLETE,
                                                          optuna.trial.TrialState.PRUNED,
                                                          optuna.trial.TrialState.FAIL))
    counted = lambda: len([t for t in study.trials if t.state.is_finished()])
    if counted() < trials:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a failed trial is in trials.csv, with why
            study.optimize(objective, n_trials=trials - counted(), timeout=timeout, callbacks=[done],
                           catch=(_Failed,))
    write_results(study, out, name)
    return study


class _Failed(Exception):
    """A trial that could not run (refused config, diverged run): failed, not fatal."""


def _with(data: Mapping[str, Any], key: str, value: Any) -> Dict[str, Any]:
    out = _copy(data)
    set_path(out, key, value)
    return out


def write_results(study, out: Path, metric: str) -> None:
    """best.toml, trials.csv and the plots of ``study`` into ``out``."""
    import optuna
    trials = study.trials
    keys = list(dict.fromkeys(k for t in trials for k in t.params))
    with open(out / "trials.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["trial", "state", f"val_{metric}", *keys, "last_round", "seconds", "run", "note"])
        for t in trials:
            seconds = t.duration.total_seconds() if t.duration else None
            last = max(t.intermediate_values) if t.intermediate_values else None
            writer.writerow([t.number, t.state.name.lower(), t.value, *(t.params.get(k) for k in keys),
                             last, seconds, t.user_attrs.get("run", ""), t.user_attrs.get("error", "")])
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    if complete:
        best = study.best_trial
        run = Path(best.user_attrs.get("run", ""))
        if (run / "config.toml").is_file():
            shutil.copyfile(run / "config.toml", out / "best.toml")
    _plots(study, out)


def _plots(study, out: Path) -> List[Path]:
    """Optuna's own matplotlib plots; each is skipped when the study cannot draw it yet
    (parameter importances need two finished trials and a parameter that varied)."""
    import optuna.visualization.matplotlib as vis
    from ..reporting.plots import plt, save
    written = []
    for name, draw in (("history", vis.plot_optimization_history), ("intermediate", vis.plot_intermediate_values),
                       ("importances", vis.plot_param_importances)):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # Optuna marks its matplotlib plots experimental
                ax = draw(study)
            fig = (ax.flat[0] if hasattr(ax, "flat") else ax).get_figure()
            save(fig, out / f"tune_{name}.png")
            written.append(out / f"tune_{name}.png")
        except (ValueError, RuntimeError, ZeroDivisionError, IndexError):
            plt.close("all")
    return written

"""``rnntrain tune [CONFIG] --trials N --param KEY=SPEC ...``: a hyperparameter search on
Optuna over any config key (training/tune.py)."""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from .commands import help_of


def register(sub) -> None:
    from .train import add_config_arguments
    p = sub.add_parser("tune", help=help_of("tune"))
    p.set_defaults(func=cmd_tune)
    p.add_argument("config", nargs="?", help="TOML config file: the base every trial starts from")
    p.add_argument("--trials", type=int, required=True, help="trials in the study (with --storage: in all, "
                   "over every process working on it)")
    p.add_argument("--param", action="append", default=[], metavar="KEY=SPEC", required=True,
                   help="a searched key: float:LOW:HIGH[:log], int:LOW:HIGH[:log] or choice:A,B,... "
                        "(repeatable; e.g. optim.lr=float:1e-4:1e-1:log, algorithm.name=choice:bptt,uoro)")
    p.add_argument("--storage", metavar="URL", help="Optuna RDB storage shared by processes and machines, "
                   "e.g. sqlite:///study.db (default: in memory)")
    p.add_argument("--study", default="rnntrain", help="study name in the storage (default: rnntrain)")
    p.add_argument("--metric", help="validation metric to optimise (default: the one that selects a run's "
                   "best round, train.select)")
    p.add_argument("--prune-after", dest="prune_after", type=int, default=5,
                   help="finished trials before the median pruner stops poor ones (default 5)")
    p.add_argument("--no-prune", dest="prune", action="store_false", help="run every trial to its end")
    p.add_argument("--timeout", type=float, help="stop starting trials after this many seconds")
    p.add_argument("--out", metavar="DIR",
                   help="where trials/, best.toml, trials.csv and the plots go (default: runs/tune-<study>)")
    p.add_argument("--quiet", action="store_true", help="no progress output of the trials")
    add_config_arguments(p)


def cmd_tune(a: argparse.Namespace) -> int:
    from ..config.run import raw_config
    from ..training.tune import tune
    from .train import _flag_entries

    base = raw_config(a.config, a.set, base=_flag_entries(a))
    out = Path(a.out or Path("runs") / f"tune-{a.study}")
    t0 = time.time()
    study = tune(base, a.param, a.trials, out, storage=a.storage, study_name=a.study, metric=a.metric,
                 prune_after=a.prune_after, prune=a.prune, timeout=a.timeout, progress="off" if a.quiet else None)
    states = {}
    for t in study.trials:
        states[t.state.name.lower()] = states.get(t.state.name.lower(), 0) + 1
    print(f"study '{a.study}': {len(study.trials)} trials ({', '.join(f'{n} {s}' for s, n in states.items())}) "
          f"in {time.time() - t0:.0f} s")
    try:
        best = study.best_trial
    except ValueError:
        print("no trial finished; see trials.csv for why")
        return 1
    print(f"best: trial {best.number}, {best.value:.6g}, " + ", ".join(f"{k} = {v}" for k, v in best.params.items()))
    print(f"best config: {out / 'best.toml'}  trials: {out / 'trials.csv'}")
    return 0

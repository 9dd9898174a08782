"""``rnntrain backtest``: rolling-origin evaluation of a forecaster (training/backtest.py)."""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from ..errors import UserError
from .commands import help_of


def register(sub) -> None:
    from .train import add_config_arguments

    p = sub.add_parser("backtest", help=help_of("backtest"))
    p.set_defaults(func=cmd_backtest)
    p.add_argument("source", nargs="?", help="a run directory (its model; folds from its test split), "
                   "or a TOML config (default: the config the flags make)")
    p.add_argument("--folds", type=int, default=5, help="number of folds (default 5)")
    p.add_argument("--fold-size", dest="fold_size", type=int, help="rows per fold (default: the test "
                   "split's rows / folds, the validation split's where there is no test split, at least "
                   "the horizon)")
    p.add_argument("--refit", action="store_true", help="train a fresh model before each fold on all "
                   "rows before it (else one model)")
    p.add_argument("--out", metavar="DIR", help="where backtest.csv, backtest.md and the fold runs go "
                   "(default: RUN_DIR/backtest, or runs/backtest-<time>)")
    add_config_arguments(p)


def cmd_backtest(a: argparse.Namespace) -> int:
    from ..training.backtest import backtest
    from .train import config_from_args

    source = Path(a.source) if a.source else None
    is_run = source is not None and source.is_dir()
    if is_run:
        given = [k for k, v in vars(a).items() if k not in ("source", "folds", "fold_size", "refit", "out", "cmd", "func")
                 and v not in (None, False, [])]
        if given:  # with or without --refit, a run is backtested with its own config.toml
            raise UserError(f"a run directory is backtested with its own config.toml; drop "
                            f"--{given[0].replace('_', '-')}, or backtest a config with the flags instead")
    if source is not None and not is_run and not source.exists():
        raise UserError(f"{source} is neither a run directory nor a config file")
    if is_run:
        what = source
    else:
        a.config = str(source) if source else None
        what = config_from_args(a)
    out = Path(a.out) if a.out else (source / "backtest" if is_run else
                                     Path("runs") / f"backtest-{time.strftime('%Y%m%d-%H%M%S')}")
    result = backtest(what, a.folds, refit=a.refit, fold_size=a.fold_size, out_dir=out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "backtest.csv").write_text(result.to_csv())
    (out / "backtest.md").write_text(result.to_markdown())
    print(result.to_markdown(), end="")
    print(f"backtest ({'refit per fold' if a.refit else 'one model'}): {out}")
    return 0

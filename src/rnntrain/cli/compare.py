"""``rnntrain compare RUN_DIR...`` (runs side by side) and ``rnntrain report RUN_DIR`` (one
run's report.html, rewritten, e.g. after ``rnntrain analyze``): reporting/compare.py."""
from __future__ import annotations

import argparse
from pathlib import Path

from .commands import help_of


def register(sub) -> None:
    p = sub.add_parser("compare", help=help_of("compare"))
    p.set_defaults(func=cmd_compare)
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run directories (any tasks, algorithms, cells)")
    p.add_argument("--out", metavar="DIR", default="compare",
                   help="where compare.html, compare.md, compare.csv and compare.png go (default: ./compare)")
    p = sub.add_parser("report", help=help_of("report"))
    p.set_defaults(func=cmd_report)
    p.add_argument("run", metavar="RUN_DIR", help="the run directory whose report.html to write")


def cmd_compare(a: argparse.Namespace) -> int:
    from ..reporting.compare import compare
    comparison = compare(a.runs, a.out)
    print(comparison.to_markdown(), end="")
    print(f"compared {len(comparison.runs)} runs: {Path(a.out) / 'compare.html'}")
    return 0


def cmd_report(a: argparse.Namespace) -> int:
    from ..reporting.compare import run_report
    print(run_report(a.run))
    return 0

"""``rnntrain generate``: closed-loop (free-running) generation from a forecasting run."""
from __future__ import annotations

import argparse

from ..errors import UserError
from .commands import help_of
from .infer import write_table


def register(sub) -> None:
    p = sub.add_parser("generate", help=help_of("generate"))
    p.set_defaults(func=cmd_generate)
    p.add_argument("run_dir", help="a run directory written by rnntrain train")
    p.add_argument("--steps", type=int, default=100, help="steps to generate (default 100)")
    p.add_argument("--start", choices=("end", "val", "test"), default="end",
                   help="after the end of the series (default), or from the start of the val/test "
                        "split, teacher-forced over every row before it and compared with the truth")
    p.add_argument("--output", "-o", metavar="FILE.csv", help="write CSV here instead of stdout")


def cmd_generate(a: argparse.Namespace) -> int:
    from ..api import generate

    if a.steps <= 0:
        raise UserError(f"--steps must be positive, got {a.steps}")
    write_table(generate(a.run_dir, steps=a.steps, start=a.start), a.output, "generated")
    return 0

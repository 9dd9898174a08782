"""``rnntrain export RUN_DIR --format onnx|torchscript``: the run's model as a file other
runtimes load, checked against rnntrain's outputs (rnntrain/exporting.py)."""
from __future__ import annotations

import argparse

from .commands import help_of


def register(sub) -> None:
    from ..exporting import FORMATS, FORMS
    p = sub.add_parser("export", help=help_of("export"))
    p.set_defaults(func=cmd_export)
    p.add_argument("run", metavar="RUN_DIR", help="the run directory whose model to export")
    p.add_argument("--format", dest="fmt", choices=FORMATS, default="onnx", help="onnx (default) or torchscript")
    p.add_argument("--form", choices=FORMS + ("both",), default="both",
                   help="sequence: whole sequences of --steps steps; step: one step, state in and out "
                        "(streaming); both (default)")
    p.add_argument("--steps", type=int, help="sequence length of the sequence form (default: the run's own)")
    p.add_argument("--out", metavar="DIR", help="where the files go (default: RUN_DIR/export)")


def cmd_export(a: argparse.Namespace) -> int:
    from ..errors import UserError
    from ..exporting import FORMS, export
    if a.steps is not None and a.steps < 1:
        raise UserError(f"--steps must be at least 1, got {a.steps}")
    done = export(a.run, a.out, fmt=a.fmt, forms=FORMS if a.form == "both" else (a.form,), steps=a.steps)
    for form, path in done.files.items():
        print(f"{form}: {path}  (max difference from rnntrain: {done.errors[form]:.2g})")
    for form, why in done.skipped.items():
        print(f"{form}: not exported: {why}")
    print(f"shapes and names: {done.meta}")
    return 0

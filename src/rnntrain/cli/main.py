"""``rnntrain`` command line: a thin layer over the Python API.

Each subcommand is a module with ``register(subparsers)`` that adds its parser and sets
``func``; adding a command is adding a module to ``COMMAND_MODULES``. Errors the user
can fix (rnntrain.errors.UserError) print one line on stderr and exit 2, without a
traceback; a failed write exits 1; Ctrl-C exits 130. The last checkpoint stays intact.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import List, Optional

from ..errors import UserError

COMMAND_MODULES = ["train", "infer", "generate", "analyze", "gradcheck", "backtest"]


class Parser(argparse.ArgumentParser):
    """argparse, but usage errors are one line (and exit status 2, as argparse's)."""

    def error(self, message: str):
        print(f"{self.prog}: error: {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(2)


def build_parser() -> Parser:
    parser = Parser(prog="rnntrain", description="Train recurrent neural networks.")
    sub = parser.add_subparsers(dest="cmd", required=True, parser_class=Parser)
    for name in COMMAND_MODULES:
        importlib.import_module(f".{name}", __package__).register(sub)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except UserError as e:
        print(f"rnntrain: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # disk full, permissions: the last checkpoint is still the previous one
        print(f"rnntrain: error: {e.strerror or e} ({e.filename or 'writing the run directory'}); "
              "fix the cause and continue with --resume", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("rnntrain: interrupted; the last checkpoint is intact (continue with "
              "'rnntrain train --resume RUN_DIR')", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

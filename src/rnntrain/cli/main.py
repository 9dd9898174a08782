"""``rnntrain`` command line: a thin layer over the Python API.

Each subcommand is a module with ``register(subparsers)`` that adds its parser and sets
``func``; adding a command is adding it to ``commands.COMMANDS``. Only the chosen command's
module is imported (``rnntrain --help`` imports no torch). Errors the user
can fix (rnntrain.errors.UserError) print one line on stderr and exit 2, without a
traceback; a failed write exits 1; Ctrl-C exits 130 and SIGTERM 143, saying whether a
checkpoint is there to resume. The last checkpoint stays intact.
"""
from __future__ import annotations

import argparse
import atexit
import importlib
import os
import re
import signal
import sys
import threading
from pathlib import Path
from typing import List, NoReturn, Optional

from ..errors import UserError
from .commands import COMMANDS

ALL = "*"  # build_parser(ALL): every command's full parser


class Parser(argparse.ArgumentParser):
    """argparse, but usage errors are one line (and exit status 2, as argparse's)."""

    def error(self, message: str):
        print(f"{self.prog}: error: {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(2)


def build_parser(command: Optional[str] = ALL) -> Parser:
    """The parser with ``command``'s module loaded (ALL: every module); the other commands
    are listed with their help only (None: no module at all, for --help and --version)."""
    from .. import __version__
    parser = Parser(prog="rnntrain", description="Train recurrent neural networks.")
    parser.add_argument("--version", action="version", version=f"rnntrain {__version__}")
    sub = parser.add_subparsers(dest="cmd", required=True, parser_class=Parser)
    loaded = set()
    for name, (module, help) in COMMANDS.items():
        if command == ALL or COMMANDS.get(command, (None,))[0] == module:
            if module not in loaded:
                importlib.import_module(f".{module}", __package__).register(sub)
                loaded.add(module)
        else:
            sub.add_parser(name, help=help)
    return parser


def _command(argv: List[str]) -> Optional[str]:
    """The subcommand argv names (its first word that is not an option), or None."""
    return next((a for a in argv if not a.startswith("-")), None)


class Terminated(KeyboardInterrupt):
    """SIGTERM (a scheduler or `kill` ending the job): handled like Ctrl-C."""


def _on_sigterm(signum, frame):
    raise Terminated()


def out_of_memory(e: BaseException) -> Optional[str]:
    """None unless ``e`` is an allocation failure; else ' (one allocation asked for X GB)' when
    the allocator said how much, or ''."""
    text = str(e)
    if not isinstance(e, MemoryError) and "allocate" not in text and "out of memory" not in text:
        return None
    found = re.search(r"allocate (\d+) bytes", text) or re.search(r"allocate ([\d.]+ [KMGT]i?B)", text)
    if not found:
        return ""
    size = found.group(1)
    return f" (one allocation asked for {int(size) / 1e9:.3g} GB)" if size.isdigit() else f" (one allocation asked for {size})"


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(_command(argv)).parse_args(argv)
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        return args.func(args)
    except UserError as e:
        print(f"rnntrain: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `rnntrain ... | head`: the reader has what it wanted
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the interpreter's final flush stays quiet
        return 0
    except OSError as e:  # disk full, permissions: the last checkpoint is still the previous one
        print(f"rnntrain: error: {e.strerror or e} ({e.filename or 'writing the run directory'}); "
              "fix the cause and continue with --resume", file=sys.stderr)
        return 1
    except (MemoryError, RuntimeError) as e:  # torch.OutOfMemoryError is a RuntimeError
        asked = out_of_memory(e)
        if asked is None:
            raise
        print(f"rnntrain: error: out of memory{asked}: use a smaller model (--hidden, --layers), batch "
              f"(--batch-size), window or population (--population)",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        where = getattr(e, "run_dir", None)
        if where is None:
            print("rnntrain: interrupted", file=sys.stderr)
        elif (Path(where) / "checkpoint.pt").is_file():
            print(f"rnntrain: interrupted; the last checkpoint is intact (continue with "
                  f"'rnntrain train --resume {where}')", file=sys.stderr)
        else:
            print(f"rnntrain: interrupted before the first round ended: {where} holds no checkpoint "
                  f"to resume; start the run again", file=sys.stderr)
        return 143 if isinstance(e, Terminated) else 130
    finally:
        signal.signal(signal.SIGTERM, previous)


def command() -> NoReturn:
    """The ``rnntrain`` command: :func:`main`, then the process ends without the interpreter's
    teardown. Why: with torch imported, the teardown (freeing some 1,100 modules and torch's
    C++ registries) takes about 0.5 s here, a tenth of a small run, and has nothing left to do
    for rnntrain: every file a command writes is closed (and renamed into place) before
    :func:`main` returns. What a normal exit does that matters still happens, in its order:
    the other non-daemon threads are joined, the atexit handlers run (logging, TensorBoard's
    writers, the plot worker, torch's own), the standard streams are flushed. An exception
    :func:`main` lets through ends the process the usual way, with its traceback."""
    code = main() or 0
    for thread in threading.enumerate():
        if thread is not threading.main_thread() and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed or broken pipe: nothing more can reach it
            pass
    os._exit(code)


if __name__ == "__main__":
    command()

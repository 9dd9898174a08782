"""``rnntrain forecast`` and ``rnntrain sample``: inference from a run directory."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import UserError
from .commands import help_of


def register(sub) -> None:
    p = sub.add_parser("forecast", help=help_of("forecast"))
    p.set_defaults(func=cmd_forecast)
    p.add_argument("run_dir", help="a run directory written by rnntrain train")
    p.add_argument("--steps", type=int, help="steps to forecast (default: the split's length with --start val/test, else 100)")
    p.add_argument("--start", choices=("end", "val", "test"), default="end",
                   help="forecast after the end of the series (default) or from the start of the val/test split")
    p.add_argument("--data", metavar="FILE.csv", help="forecast after the end of this new file (the run's "
                   "columns; scaled as in training)")
    p.add_argument("--output", "-o", metavar="FILE.csv", help="write CSV here instead of stdout")
    p = sub.add_parser("predict", help=help_of("predict"))
    p.set_defaults(func=cmd_predict)
    p.add_argument("run_dir", help="a run directory written by rnntrain train")
    p.add_argument("--data", required=True, metavar="FILE", help="sequences in the training data's format "
                   "(seq2seq: one source per line)")
    p.add_argument("--output", "-o", metavar="FILE", help="write here instead of stdout (CSV; TSV for .tsv)")
    p.add_argument("--beam-width", dest="beam_width", type=int, help="seq2seq: beam width (1 = greedy; "
                   "default: the run's task.decode)")
    p = sub.add_parser("translate", help=help_of("translate"))
    p.set_defaults(func=cmd_translate)
    p.add_argument("run_dir", help="a run directory written by rnntrain train")
    p.add_argument("text", help="the source sequence (as a line of the training data's source side)")
    p.add_argument("--beam-width", dest="beam_width", type=int, help="beam width (1 = greedy; default: the run's)")
    p = sub.add_parser("sample", help=help_of("sample"))
    p.set_defaults(func=cmd_sample)
    p.add_argument("run_dir", help="a run directory written by rnntrain train")
    p.add_argument("--length", type=int, default=500, help="characters to generate")
    p.add_argument("--temperature", type=float, default=0.8, help="softmax temperature (0 = greedy)")
    p.add_argument("--prime", default="", help="text to start from")
    p.add_argument("--seed", type=int, default=0, help="seed of the sampling (the same seed, the same text)")


def cmd_forecast(a: argparse.Namespace) -> int:
    from ..api import forecast

    if a.steps is not None and a.steps <= 0:
        raise UserError(f"--steps must be positive, got {a.steps}")
    write_table(forecast(a.run_dir, steps=a.steps, start=a.start, data=a.data), a.output, "forecast")
    return 0


def write_table(table, output, noun: str) -> None:
    """A forecast/generation/prediction table as CSV (TSV when ``output`` ends in .tsv): to
    ``output`` if given, else to stdout."""
    text = table.to_csv(sep="\t" if output and str(output).lower().endswith(".tsv") else ",")
    if output:
        Path(output).write_text(text, encoding="utf-8")
        print(f"wrote {len(text.splitlines()) - 1} {noun} rows to {output}")
    else:
        sys.stdout.write(text)


def cmd_predict(a: argparse.Namespace) -> int:
    from ..api import predict

    write_table(predict(a.run_dir, a.data, beam_width=a.beam_width), a.output, "prediction")
    return 0


def cmd_translate(a: argparse.Namespace) -> int:
    from ..api import translate

    print(translate(a.run_dir, a.text, beam_width=a.beam_width))
    return 0


def cmd_sample(a: argparse.Namespace) -> int:
    from ..api import sample

    if a.length <= 0:
        raise UserError(f"--length must be positive, got {a.length}")
    if a.temperature < 0:
        raise UserError(f"--temperature must be >= 0 (0 = most likely character), got {a.temperature}")
    sys.stdout.write(sample(a.run_dir, length=a.length, temperature=a.temperature,
                            prime=a.prime, seed=a.seed) + "\n")
    return 0

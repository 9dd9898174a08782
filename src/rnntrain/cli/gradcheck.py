"""``rnntrain gradcheck``: an online algorithm's gradient vs BPTT and finite differences.

Thin layer over :func:`rnntrain.algorithms.gradcheck.gradcheck`; prints a markdown table
(max absolute and relative error per parameter tensor) and exits 0 within tolerance, 1
otherwise.
"""
from __future__ import annotations

import argparse

from .commands import help_of


def register(sub) -> None:
    p = sub.add_parser("gradcheck", help=help_of("gradcheck"))
    p.set_defaults(func=cmd_gradcheck)
    p.add_argument("--algorithm", default="rtrl", help="rtrl, uoro, snap1, snap2 or crbp")
    p.add_argument("--cell", default="rnn", help="rnn, rnn-relu, lstm, gru or local")
    p.add_argument("--input-size", type=int, default=3, dest="input_size", help="features per step")
    p.add_argument("--hidden", type=int, default=4, help="hidden units per layer")
    p.add_argument("--layers", type=int, default=1, help="stacked layers")
    p.add_argument("--steps", type=int, default=8, help="sequence length T")
    p.add_argument("--streams", type=int, default=2, help="sequences in the batch N")
    p.add_argument("--samples", type=int, default=2000, help="UORO: independent estimates averaged")
    p.add_argument("--seed", type=int, default=0, help="seed of the random network and data")


def cmd_gradcheck(a: argparse.Namespace) -> int:
    from ..algorithms.gradcheck import gradcheck
    from ..config.schema import check
    from ..models.sequence_model import CELL_NAMES

    check(a.cell in CELL_NAMES, f"unknown cell '{a.cell}': choose one of {', '.join(CELL_NAMES)} (--cell)")
    for name in ("input_size", "hidden", "layers", "steps", "streams", "samples"):
        check(getattr(a, name) > 0, f"--{name.replace('_', '-')} must be positive, got {getattr(a, name)}")
    result = gradcheck(a.algorithm, a.cell, input_size=a.input_size, hidden=a.hidden, layers=a.layers,
                       steps=a.steps, streams=a.streams, samples=a.samples, seed=a.seed)
    print(result.table())
    return 0 if result.ok else 1

"""``rnntrain analyze gradients|dynamics RUN_DIR``: look inside a trained network."""
from __future__ import annotations

import argparse

from .commands import help_of


def register(sub) -> None:
    p = sub.add_parser("analyze", help=help_of("analyze"))
    # the metavar names the choice in argparse's one-line errors ("argument gradients|dynamics:
    # invalid choice: 'runs/x'"), where dest would say "argument what"
    what = p.add_subparsers(dest="what", required=True, parser_class=type(p), metavar="gradients|dynamics",
                           help="what to look at, then the run directory: rnntrain analyze gradients RUN_DIR")
    g = what.add_parser("gradients", help="vanishing/exploding gradients: ‖∂L/∂h_k‖, "
                        "σ_max(∂h_T/∂h_k) against the lag, heatmap over training")
    g.set_defaults(func=cmd_gradients)
    g.add_argument("run_dir", help="a run directory written by rnntrain train")
    g.add_argument("--out", metavar="DIR", help="where to write (default RUN_DIR/analysis)")
    g.add_argument("--batch-size", type=int, default=8, dest="batch_size",
                   help="validation sequences in the probe batch")
    g.add_argument("--core", help="which recurrent core (encoder-decoders: encoder, the default)")
    d = what.add_parser("dynamics", help="fixed points, Lyapunov spectrum and behaviour "
                        "under a constant input")
    d.set_defaults(func=cmd_dynamics)
    d.add_argument("run_dir", help="a run directory written by rnntrain train")
    d.add_argument("--out", metavar="DIR", help="where to write (default RUN_DIR/analysis)")
    d.add_argument("--input", metavar="X1,X2,...", help="constant feature input (default: zeros, autonomous)")
    d.add_argument("--token", type=int, help="constant token id, for token models")
    d.add_argument("--starts", type=int, default=16, help="trajectories drawn")
    d.add_argument("--steps", type=int, default=300, help="steps per drawn trajectory")
    d.add_argument("--exponents", type=int, help="Lyapunov exponents to compute (default: all)")
    d.add_argument("--lyapunov-steps", type=int, default=1000, dest="lyapunov_steps",
                   help="steps the Lyapunov exponents are averaged over")
    d.add_argument("--seed", type=int, default=0, help="seed of the drawn starting states")
    d.add_argument("--core", help="which recurrent core (default: every core; encoder-decoders: encoder and decoder)")


def _positive(name: str, value) -> None:
    from ..errors import UserError
    if value is not None and value <= 0:
        raise UserError(f"{name} must be positive, got {value}")


def cmd_gradients(a: argparse.Namespace) -> int:
    from ..analysis import analyze_gradients

    _positive("--batch-size", a.batch_size)
    s = analyze_gradients(a.run_dir, a.out, batch_size=a.batch_size, core=a.core)
    print(f"gradient flow: {s['regime']} ({s['rate']:.4g} per step over {s['steps']} steps); "
          f"wrote {', '.join(s['files'])}" + (f"\nnote: {s['note']}" if s["note"] else ""))
    return 0


def cmd_dynamics(a: argparse.Namespace) -> int:
    from ..analysis import analyze_dynamics
    from ..errors import UserError

    for name in ("starts", "steps", "exponents", "lyapunov_steps"):
        _positive("--" + name.replace("_", "-"), getattr(a, name))
    values = None
    if a.input is not None:
        try:
            values = [float(v) for v in a.input.split(",")]
        except ValueError:
            raise UserError(f"--input must be comma-separated numbers, got '{a.input}'") from None
    s = analyze_dynamics(a.run_dir, a.out, values=values, token=a.token, starts=a.starts,
                         steps=a.steps, exponents=a.exponents, lyapunov_steps=a.lyapunov_steps,
                         seed=a.seed, core=a.core)
    for name, part in (s["cores"] if "cores" in s else {"": s}).items():
        b = part["behaviour"]
        period = f" (period {b['period']})" if b["period"] else ""
        print(f"{name + ': ' if name else ''}behaviour: {b['kind']}{period}; largest Lyapunov exponent "
              f"{part['lyapunov']['largest']:.4g}; {len(part['fixed_points'])} fixed/slow points {part['counts']}")
    print(f"wrote {', '.join(s['files'])}, dynamics.json")
    return 0

"""``rnntrain train``: train from flags, a TOML config and ``--set`` overrides, or resume."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Dict, Optional

from ..errors import UserError
from .commands import help_of


def register(sub) -> None:
    p = sub.add_parser("train", help=help_of("train"))
    p.set_defaults(func=cmd_train)
    p.add_argument("config", nargs="?", help="TOML config file (everything has a default)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run from its checkpoint")
    p.add_argument("--out", metavar="DIR", help="run directory (default: runs/<task>-<cell>-<time>)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run in --out")
    add_config_arguments(p)
    p.add_argument("--quiet", action="store_true", help="no progress output")


def add_config_arguments(p: argparse.ArgumentParser) -> None:
    """The flags a run's config is made of (data, model, training, --set): ``train`` and
    ``backtest`` share them, read by :func:`config_from_args`."""
    # The choices shown in --help come from the registries, so they never go stale.
    from ..algorithms import ALGORITHMS
    from ..models.init import INIT_SCHEMES
    from ..models.sequence_model import CELL_NAMES
    from ..tasks import TASKS
    from ..tasks.series import BUILTIN_SERIES

    g = p.add_argument_group("data")
    g.add_argument("--task", choices=sorted(TASKS), help="what to learn (default: forecast); "
                   "classify/regress/tag/transcribe read labelled sequences; seq2seq maps sequences to sequences")
    g.add_argument("--data", metavar="FILE", help="forecast: CSV time series; classify/regress/tag/"
                   "transcribe: .ts, long .csv, .npz or label<TAB>text file; seq2seq: source<TAB>target lines")
    g.add_argument("--test-data", dest="test_data", metavar="FILE",
                   help="labelled tasks: a separate test file (else a test fraction of --data)")
    g.add_argument("--dataset", metavar="NAME", help="labelled tasks: a built-in set (waves, segments, "
                   "spelling; seq2seq: reverse, cmudict) or one the aeon package ships (JapaneseVowels, ...)")
    g.add_argument("--column", action="append", metavar="NAME", help="input column (repeatable)")
    g.add_argument("--target", action="append", metavar="NAME", help="target column (repeatable; default: the inputs)")
    g.add_argument("--future-column", dest="future_column", action="append", metavar="NAME",
                   help="forecast: a known-future input, read not predicted (repeatable); past the end its "
                   "values come from the file's last rows, those with the targets empty")
    g.add_argument("--series-id", dest="series_id", metavar="COLUMN",
                   help="forecast: the column naming each series of a long file (one global model over all)")
    g.add_argument("--calendar", action=argparse.BooleanOptionalAction, default=None,
                   help="forecast: calendar features of the date column (hour, weekday, day of year, "
                   "month, as the spacing suits) as known-future inputs")
    g.add_argument("--head", choices=("point", "gaussian", "quantile"),
                   help="forecast: a point forecast, or a distribution with prediction intervals")
    g.add_argument("--series", help=f"built-in series: {', '.join(BUILTIN_SERIES)}")
    g.add_argument("--text", metavar="FILE", help="UTF-8 text file for character-level language modelling")
    g.add_argument("--window", type=int, help="forecast: input steps per window; text, stream: steps per "
                   "chunk (the same as --seq-len)")
    g.add_argument("--seq-len", type=int, dest="seq_len", help="text, stream: steps per chunk of truncated "
                   "BPTT (forecast: the same as --window)")
    g.add_argument("--horizon", type=int, help="steps ahead predicted per window")
    g.add_argument("--interpolate", action="store_true", help="fill missing CSV values linearly")
    g.add_argument("--scale", help="feature scaling fitted on the training split: none, standard or minmax "
                   "(default: standard for your files, none for built-in series)")
    g = p.add_argument_group("model")
    g.add_argument("--cell", help=", ".join(CELL_NAMES))
    g.add_argument("--hidden", type=int, help="hidden units per layer")
    g.add_argument("--layers", type=int, help="stacked layers")
    g.add_argument("--bidirectional", action=argparse.BooleanOptionalAction, default=None,
                   help="bidirectional layers (--no-bidirectional: forward only)")
    g.add_argument("--init", help=", ".join(INIT_SCHEMES))
    g.add_argument("--proj", type=int, help="lstm: project h to this many units (torch's proj_size)")
    g.add_argument("--dropout", type=float, help="dropout between stacked layers")
    g.add_argument("--recurrent-dropout", dest="recurrent_dropout", type=float,
                   help="one dropout mask per sequence on h(t-1) into the recurrent weights (bptt)")
    g.add_argument("--zoneout", type=float, help="probability that a state unit keeps its previous value (bptt)")
    g.add_argument("--weight-drop", dest="weight_drop", type=float,
                   help="DropConnect on the recurrent weights, one mask per batch (bptt)")
    g.add_argument("--attention", help="none, additive, general, dot or scaled-dot: an encoder-decoder's "
                   "attention, or the score of --set model.readout=attention")
    g.add_argument("--input-feeding", dest="input_feeding", action=argparse.BooleanOptionalAction,
                   default=None, help="encoder-decoder: feed the attentional state to the next step")
    g.add_argument("--beam-width", dest="beam_width", type=int,
                   help="seq2seq: decode by beam search of this width (1 = greedy)")
    g = p.add_argument_group("training")
    g.add_argument("--algorithm", help="training algorithm: " + ", ".join(ALGORITHMS))
    g.add_argument("--truncation", type=int, help="truncated BPTT: steps per piece (0 = full)")
    g.add_argument("--update-every", type=int, dest="update_every",
                   help="online algorithms (rtrl, uoro, snap1, snap2, crbp): update every k steps (0 = per batch)")
    g.add_argument("--epochs", type=int, help="rounds of training")
    g.add_argument("--generations", type=int,
                   help="population methods: generations (an alias of --epochs, sets train.epochs)")
    g.add_argument("--population", type=int, help="population methods: individuals per generation")
    g.add_argument("--batch-size", type=int, dest="batch_size", help="sequences per batch")
    g.add_argument("--optimizer", help="sgd, adam or rmsprop")
    g.add_argument("--lr", type=float, help="learning rate")
    g.add_argument("--clip", type=float, help="gradient-norm clip (0 = off)")
    g.add_argument("--patience", type=int, help="early stopping patience in rounds (0 = off)")
    g.add_argument("--seed", type=int, help="seed of every random draw: the same seed repeats a CPU "
                   "run bit for bit")
    g.add_argument("--tensorboard", action="store_true", default=None,
                   help="write TensorBoard event files into RUN_DIR/tensorboard every round "
                        "(monitor.tensorboard_every = 1; the track extra)")
    g.add_argument("--figures", action=argparse.BooleanOptionalAction, default=None,
                   help="draw the run's figures (default); --no-figures: none, the same numbers and "
                        "report.html without plots (train.figures; for sweeps and CI)")
    g.add_argument("--device", help="cpu or cuda")
    g.add_argument("--dtype", help="float32 or float64")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override any config key, e.g. --set model.dropout=0.1 (repeatable)")


# Flags that set one key of the [task] table: (flag, attribute, key, value -> config value).
# Which task kinds take a key is read from the tasks' own config dataclasses, so a flag the
# chosen task does not have is refused naming the kinds that do (never silently ignored).
_TASK_FLAGS = (
    ("--data", "data", "data", None), ("--test-data", "test_data", "test_data", None),
    ("--dataset", "dataset", "dataset", None), ("--column", "column", "columns", None),
    ("--target", "target", "targets", None), ("--future-column", "future_column", "future", None),
    ("--series-id", "series_id", "series_id", None),
    ("--calendar", "calendar", "calendar", lambda on: "auto" if on else "none"),
    ("--head", "head", "head", None), ("--series", "series", "series", None), ("--text", "text", "text", None),
    ("--horizon", "horizon", "horizon", None), ("--interpolate", "interpolate", "interpolate", None),
    ("--scale", "scale", "scale", None), ("--beam-width", "beam_width", "beam_width", None),
)
# flags of one key of the [algorithm] table, whose algorithms are read from their Options
_ALGORITHM_FLAGS = (("--truncation", "truncation", "truncation"), ("--update-every", "update_every", "update_every"),
                    ("--population", "population", "population"))


def _chosen(a: argparse.Namespace, table: str, tag: str, flag_value: Optional[str], default: str) -> str:
    """The task kind / algorithm name the run will have: --set beats the flag, which beats
    the config file (the order load_config applies them in)."""
    for item in reversed(a.set):
        key, _, value = item.partition("=")
        if key.strip() == f"{table}.{tag}":
            return value.strip().strip("'\"")
    if flag_value:
        return flag_value
    if a.config and Path(a.config).is_file():
        from ..config.run import read_toml
        section = read_toml(Path(a.config)).get(table, {})
        if isinstance(section, dict) and tag in section:
            return str(section[tag])
    return default


def _flag_entries(a: argparse.Namespace) -> Dict[str, Any]:
    """Dotted config keys set by the common-path flags; a flag the chosen task or algorithm
    does not take is refused in one line naming the ones that do."""
    from ..algorithms import ALGORITHMS, get_algorithm
    from ..config.schema import field_names, owners
    from ..tasks import TASKS

    out: Dict[str, Any] = {}
    kind = _chosen(a, "task", "kind", a.task or ("text" if a.text is not None else None), "forecast")
    if kind not in TASKS:
        return {"task.kind": kind}  # load_config names the valid kinds
    if a.task or a.text is not None:
        out["task.kind"] = kind
    has = field_names(TASKS[kind][0])

    def refuse(flag: str, *keys: str) -> UserError:
        takers = owners({k: cfg for k, (cfg, _) in TASKS.items()}, *keys)
        return UserError(f"{flag} does not apply to a {kind} run: drop it, or choose a task that takes it "
                         f"({', '.join('--task ' + t for t in takers)})")

    for flag, attr, key, convert in _TASK_FLAGS:
        value = getattr(a, attr)
        if value in (None, False, []):
            continue
        if key not in has:
            raise refuse(flag, key)
        out[f"task.{key}"] = convert(value) if convert else value
        if key == "beam_width":
            out["task.decode"] = "beam" if value > 1 else "greedy"
    # --window and --seq-len name one thing: a forecast's input window, a text or stream chunk
    if a.window is not None and a.seq_len is not None and a.window != a.seq_len:
        raise UserError("--window and --seq-len name the same length here: give one of them")
    length = a.window if a.window is not None else a.seq_len
    if length is not None:
        key = "window" if "window" in has else "seq_len" if "seq_len" in has else None
        if key is None:
            raise refuse("--window" if a.window is not None else "--seq-len", "window", "seq_len")
        out[f"task.{key}"] = length
    if a.generations is not None:
        if a.epochs is not None and a.epochs != a.generations:
            raise UserError("--generations is an alias of --epochs: give one of them")
        out["train.epochs"] = a.generations
    algorithm = _chosen(a, "algorithm", "name", a.algorithm, "bptt")
    if algorithm in ALGORITHMS:
        options = field_names(get_algorithm(algorithm).Options)
        for flag, attr, key in _ALGORITHM_FLAGS:
            if getattr(a, attr) is not None and key not in options:
                takers = owners({n: cls.Options for n, cls in ALGORITHMS.items()}, key)
                raise UserError(f"{flag} does not apply to --algorithm {algorithm}: drop it, or choose an "
                                f"algorithm that takes it ({', '.join('--algorithm ' + t for t in takers)})")
    for key, value in (("model.cell", a.cell), ("model.hidden", a.hidden), ("model.layers", a.layers),
                       ("model.bidirectional", a.bidirectional), ("model.init", a.init),
                       ("model.proj", a.proj), ("model.dropout", a.dropout),
                       ("model.recurrent_dropout", a.recurrent_dropout), ("model.zoneout", a.zoneout),
                       ("model.weight_drop", a.weight_drop),
                       ("model.attention", a.attention), ("model.input_feeding", a.input_feeding),
                       ("algorithm.name", a.algorithm), ("algorithm.truncation", a.truncation),
                       ("algorithm.update_every", a.update_every), ("algorithm.population", a.population),
                       ("train.epochs", a.epochs), ("train.batch_size", a.batch_size),
                       ("train.patience", a.patience), ("optim.name", a.optimizer), ("optim.lr", a.lr),
                       ("optim.clip", a.clip), ("seed", a.seed), ("device", a.device), ("dtype", a.dtype),
                       ("monitor.tensorboard_every", a.tensorboard and 1), ("train.figures", a.figures)):
        if value is not None:
            out[key] = value
    return out


def config_from_args(a: argparse.Namespace):
    """The validated RunConfig of `rnntrain train` arguments (config file, flags, --set)."""
    from ..config.run import load_config
    return load_config(a.config, a.set, base=_flag_entries(a))


def cmd_train(a: argparse.Namespace) -> int:
    from ..training import resume, train

    progress = "off" if a.quiet else None
    if a.resume:
        others = [k for k, v in vars(a).items()
                  if k not in ("resume", "quiet", "cmd", "func") and v not in (None, False, [])]
        if others:
            raise UserError(f"--resume continues a run with its own config.toml; drop --{others[0].replace('_', '-')}")
        out = Path(a.resume)
        result = _noting_run(out, lambda: resume(out, progress=progress))
    else:
        config = config_from_args(a)
        out = Path(a.out) if a.out else default_out(config)
        try:
            result = _noting_run(out, lambda: train(config, out, overwrite=a.overwrite, progress=progress))
        except BaseException:
            if not a.out and out.is_dir() and not any(out.iterdir()):
                out.rmdir()  # the name default_out reserved, never written: bad data leaves nothing
            raise
    print_summary(result.summary, result.out_dir)
    if result.summary.get("diverged_round"):
        print(f"rnntrain: error: training {result.summary['stop_reason']}", file=sys.stderr)
        return 1
    return 0


def _noting_run(out: Path, run):
    """run(), an interruption tagged with the run directory (cli.main words its message)."""
    try:
        return run()
    except KeyboardInterrupt as e:
        e.run_dir = out
        raise


def default_out(config) -> Path:
    """runs/<task>-<cell>-<time>, made here: a run started in the same second gets -2, -3 ...
    (mkdir is atomic, so two processes never get the same directory)."""
    import time
    base = Path("runs") / f"{config.task_kind}-{config.model.cell}-{time.strftime('%Y%m%d-%H%M%S')}"
    base.parent.mkdir(parents=True, exist_ok=True)
    for k in range(1, 1000):
        path = base if k == 1 else base.with_name(f"{base.name}-{k}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise UserError(f"could not name a new run directory next to {base}; give one with --out")


def print_summary(summary: Dict[str, Any], out_dir: Optional[Path]) -> None:
    print(f"{summary['algorithm']} on {summary['task']} ({summary['cell']}): {summary['rounds']} "
          f"{summary['unit']}s in {summary['seconds']:.1f} s; {summary['stop_reason']}")
    for split, metrics in summary["metrics"].items():
        shown = "  ".join(f"{k} {v:.5g}" for k, v in metrics.items() if isinstance(v, (int, float)))
        print(f"  {split:5s} {shown}")
    if "recursive_mse" in summary:
        print(f"  recursive forecast MSE over the first {summary.get('recursive_points', '?')} validation "
              f"rows: {summary['recursive_mse']:.5g}")
    judged = summary.get("against_baselines")
    if judged:
        names = lambda keys: ", ".join(f"{k.replace('_', ' ')} ({judged['baselines'][k]:.3g})" for k in keys)
        line = f"  {judged['split']} {judged['measure'].upper()} {judged['score']:.3g}"
        line += f": beats {names(judged['beats'])}" if judged["beats"] else ""
        line += f"; does not beat {names(judged['loses_to'])}" if judged["loses_to"] else ""
        print(line)
    if "sample" in summary:
        print("  sample: " + summary["sample"][:200].replace("\n", "\\n"))
    if out_dir is not None:
        print(f"run directory: {out_dir}")

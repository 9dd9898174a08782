"""The whole configuration of a run, as validated data, and its TOML form.

A config on disk (and in every run directory, ``config.toml``)::

    seed = 0
    [task]          # kind = "forecast" | "text", then that task's options
    [model]         # rnntrain.models.ModelConfig
    [optim]         # rnntrain.optim.OptimConfig
    [train]         # TrainConfig below
    [algorithm]     # name = "bptt" | ..., then that algorithm's options

Tables ``task`` and ``algorithm`` are tagged unions: ``kind``/``name`` picks the dataclass
that validates the remaining keys. Everything missing takes its documented default, so
the empty config is the seed PyTorch sine example.
"""
from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, Mapping, MutableMapping

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib
import tomli_w

from ..algorithms import ALGORITHMS, get_algorithm
from ..errors import UserError
from ..models.sequence_model import ModelConfig
from ..optim import OptimConfig
from ..tasks import TASKS
from .schema import build, check, closest, to_dict, unknown_key

DEVICES_HINT = "cpu, cuda or cuda:N"


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 100  # rounds of training, in the algorithm's unit (epochs for BPTT)
    batch_size: int = 32  # sequences per minibatch (the seed example's 32)
    patience: int = 0  # early stopping: rounds without validation improvement (0 = off)
    min_delta: float = 0.0  # smallest decrease of the validation score that counts as improvement
    restore_best: bool = True  # end with the weights of the best validation round
    # the validation metric that decides the best round (exact_match, accuracy, bleu ...: the
    # highest; losses and errors: the lowest); "auto": the task's (the loss, or seq2seq's
    # token_error: its teacher-forced loss keeps rising while decoding still improves)
    select: str = "auto"
    # evaluate the validation split every N rounds (and after the first and the last); the
    # best round and early stopping (patience then counts evaluations) see those rounds only
    eval_every: int = 1
    # seconds between checkpoints: one after the first round, then when this much time has
    # passed, at the end, and on Ctrl-C/SIGTERM (the last finished round, kept in memory);
    # 0: after every round. A crash loses at most this much training, and --resume still
    # ends exactly like an uninterrupted run
    checkpoint_every: float = 30.0
    # draw the run's figures (loss.png, train_metrics.png, the task's forecast, confusion or
    # attention plots); false: none, for sweeps, tune trials and CI. Every number (metrics.csv,
    # summary.json, the checkpoint) and report.html (then without plots) are the same
    figures: bool = True

    def __post_init__(self) -> None:
        check(self.epochs > 0, f"epochs must be positive, got {self.epochs} (--epochs)")
        check(self.eval_every >= 1, f"eval_every counts rounds: >= 1, got {self.eval_every} (train.eval_every)")
        check(self.checkpoint_every >= 0, f"checkpoint_every is in seconds: >= 0 (0: every round), got "
                                          f"{self.checkpoint_every} (train.checkpoint_every)")
        check(self.batch_size > 0, f"batch_size must be positive, got {self.batch_size} (--batch-size)")
        check(self.patience >= 0, f"patience must be >= 0 (0 = no early stopping), got {self.patience}")
        check(self.min_delta >= 0, f"min_delta must be >= 0, got {self.min_delta}")


@dataclass(frozen=True)
class MonitorConfig:
    """Measurements taken during training (rnntrain.training.monitors); 0 = off."""

    gradient_flow_every: int = 0  # record gradient-flow statistics every N rounds (rnntrain analyze gradients)
    # TensorBoard event files in RUN_DIR/tensorboard (training/tracking.py; the track extra):
    tensorboard_every: int = 0  # the metrics row as scalars every N rounds, the config as text (--tensorboard: 1)
    histograms_every: int = 0  # histograms of every weight tensor and its gradient every N rounds

    def __post_init__(self) -> None:
        for name in ("gradient_flow_every", "tensorboard_every", "histograms_every"):
            value = getattr(self, name)
            check(value >= 0, f"monitor.{name} must be >= 0 (0 = off), got {value}")


@dataclass(frozen=True)
class RunConfig:
    seed: int = 0  # seeds every random draw: same seed, same bits on CPU
    device: str = "cpu"  # cpu | cuda | cuda:N
    dtype: str = "float32"  # float32 | float64
    threads: int = 0  # torch CPU threads; 0: auto (1 for small models, else torch's default)
    task: Any = None  # the task's config dataclass (ForecastConfig, TextConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    monitor: MonitorConfig = field(default_factory=MonitorConfig)
    algorithm: Any = None  # the algorithm's options dataclass
    # the tags of the two unions, kept beside their tables (written as [task] kind, [algorithm] name)
    task_kind: str = "forecast"
    algorithm_name: str = "bptt"

    def __post_init__(self) -> None:
        check(self.dtype in ("float32", "float64"), f"dtype must be float32 or float64, got '{self.dtype}'")
        check(self.device == "cpu" or self.device.startswith("cuda"),
              f"unknown device '{self.device}': use {DEVICES_HINT} (--device)")
        check(self.threads >= 0, f"threads must be >= 0, got {self.threads}")
        check(0 <= self.seed < 2 ** 63, f"seed must be in [0, 2**63) (torch's generators take 64-bit seeds), "
                                         f"got {self.seed}")


_TAGS = ("task_kind", "algorithm_name")  # set from the tables' kind/name, never top-level keys
_TOP = {f.name for f in dataclasses.fields(RunConfig)} - set(_TAGS)


def from_dict(data: Mapping[str, Any]) -> RunConfig:
    """Validate a plain dict (parsed TOML + overrides) into a RunConfig."""
    data = dict(data)
    for key in data:
        if key not in _TOP:
            raise unknown_key(key, _TOP, "")
    for key in ("task", "model", "optim", "train", "monitor", "algorithm"):
        if key in data and not isinstance(data[key], Mapping):
            raise UserError(f"config '{key}' must be a table, got {data[key]!r}")
    task = dict(data.pop("task", {}))
    kind = task.pop("kind", "forecast")
    if kind not in TASKS:
        raise UserError(f"unknown task kind '{kind}'{closest(str(kind), TASKS)}: choose one of {', '.join(TASKS)}")
    # a task may say which settings suit it (labelled sequences: bidirectional GRUs, ...), and
    # so may an algorithm (RTRL: a network small enough for its n⁴ cost); each applies where
    # the user set nothing (the algorithm's over the task's), and a suggested architecture
    # (cell, direction) only when the user chose no cell (a chosen cell keeps ModelConfig's
    # defaults: --cell lstm is a plain forward network unless --bidirectional)
    algo = dict(data.pop("algorithm", {}))
    name = algo.pop("name", "bptt")
    algo_cls = get_algorithm(str(name))
    suggested = getattr(TASKS[kind][1], "SUGGESTED", {})
    for table in dict.fromkeys([*suggested, *algo_cls.SUGGESTED]):
        suits = {**suggested.get(table, {}), **algo_cls.SUGGESTED.get(table, {})}
        mine = dict(data.get(table, {}))
        if table == "model" and "cell" in mine:
            suits = {k: v for k, v in suits.items() if k not in ("cell", "bidirectional")}
        if table == "model" and algo_cls.forward_only:  # online learning reads forwards only
            suits = {k: v for k, v in suits.items() if k != "bidirectional"}
        data[table] = {**suits, **mine}
    options_cls = algo_cls.Options
    scalars = {k: v for k, v in data.items() if k in ("seed", "device", "dtype", "threads")}
    top = build(RunConfig, {**scalars, **{k: data[k] for k in ("model", "optim", "train", "monitor") if k in data}})
    return dataclasses.replace(
        top, task=build(TASKS[kind][0], task, "task.", {k: c for k, (c, _) in TASKS.items()},
                        f"task.kind = '{kind}'"), task_kind=kind,
        algorithm=build(options_cls, algo, "algorithm.", {n: a.Options for n, a in ALGORITHMS.items()},
                        f"algorithm.name = '{name}'"), algorithm_name=str(name))


def to_plain(config: RunConfig) -> Dict[str, Any]:
    """The config as a plain dict with every value resolved (what config.toml holds)."""
    out = {k: getattr(config, k) for k in ("seed", "device", "dtype", "threads")}
    out["task"] = {"kind": config.task_kind, **to_dict(config.task)}
    out["model"] = to_dict(config.model)
    out["optim"] = to_dict(config.optim)
    out["train"] = to_dict(config.train)
    out["monitor"] = to_dict(config.monitor)
    out["algorithm"] = {"name": config.algorithm_name, **to_dict(config.algorithm)}
    return out


def dumps(config: RunConfig) -> str:
    return tomli_w.dumps(to_plain(config))


def read_toml(path: Path) -> Dict[str, Any]:
    """Parse a TOML file as data (never executed); errors name the file and line."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"config file not found: {path}")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"config file {path} is not valid TOML: {e}") from None
    except UnicodeDecodeError:
        raise UserError(f"config file {path} is not UTF-8 text") from None


def parse_value(text: str) -> Any:
    """A --set value: parsed as a TOML value (3, 1e-3, true, [1, 2], "s"), else a bare string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def set_path(data: MutableMapping[str, Any], dotted: str, value: Any) -> None:
    """data['a']['b'] = value for dotted 'a.b' (tables created as needed)."""
    keys = dotted.split(".")
    if not all(keys):
        raise UserError(f"bad --set key '{dotted}': use section.key=value, e.g. model.hidden=32")
    node = data
    for k in keys[:-1]:
        nxt = node.setdefault(k, {})
        if not isinstance(nxt, MutableMapping):
            raise UserError(f"bad --set key '{dotted}': '{k}' is a value, not a table")
        node = nxt
    node[keys[-1]] = value


def apply_overrides(data: MutableMapping[str, Any], overrides: Iterable[str]) -> None:
    """Apply ``key=value`` strings (``--set``) to a raw config dict, before validation."""
    for item in overrides:
        if "=" not in item:
            raise UserError(f"bad --set '{item}': expected key=value, e.g. model.hidden=32")
        key, value = item.split("=", 1)
        set_path(data, key.strip(), parse_value(value.strip()))


def raw_config(path=None, overrides: Iterable[str] = (), base: Mapping[str, Any] | None = None) -> Dict[str, Any]:
    """The config as the user wrote it (TOML file, then ``base`` entries, then ``--set``
    overrides), before validation fills in defaults: what a search varies keys of."""
    data: Dict[str, Any] = read_toml(Path(path)) if path else {}
    for dotted, value in (base or {}).items():
        set_path(data, dotted, value)
    apply_overrides(data, overrides)
    return data


def load_config(path=None, overrides: Iterable[str] = (), base: Mapping[str, Any] | None = None) -> RunConfig:
    """Config from an optional TOML file, then ``base`` entries, then ``--set`` overrides."""
    return from_dict(raw_config(path, overrides, base))

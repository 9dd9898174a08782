"""The run directory: everything needed to resume, evaluate, forecast or sample.

::

    RUN_DIR/
      config.toml      resolved config (every default written out)
      metrics.csv      one row per round: train_* and val_* metrics, lr, clipped fraction, time
      checkpoint.pt    model, algorithm state (optimizer, ...), RNG states, progress, task state
      summary.json     final metrics on every split, stop reason, timings, task extras
      loss.png         train/validation loss curves
      train_metrics.png  every other train_* metric family (fitness, diversity, lr, ...)
      ...              the task's own plots (forecast.png) and samples (sample.txt)
"""
from __future__ import annotations

import csv
import fnmatch
import io
import json
import math
import os
import shutil
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Dict, Iterator, List

from ..config.run import RunConfig, dumps, from_dict, read_toml
from ..errors import UserError
from .checkpoint import atomic_write_text

CONFIG = "config.toml"
METRICS = "metrics.csv"
CHECKPOINT = "checkpoint.pt"
SUMMARY = "summary.json"
RUN_FILES = (CONFIG, METRICS, CHECKPOINT, SUMMARY, "loss.png", "train_metrics.png", "forecast.png", "sample.txt",
             "gradient_flow.csv", "attention.png", "per_series.csv")
LOCK = ".rnntrain.lock"  # the pid of the process writing the run (RunDir.locked)
# forecast-*.png: one plot per series of a long file (tasks/panel.py); .NAME.*.tmp: a write
# (training/checkpoint.py: atomic_write) that a kill cut short, removed when the run restarts
RUN_PATTERNS = ("forecast-*.png", ".*.tmp")
# written later by `rnntrain analyze` and `rnntrain backtest RUN_DIR`; part of the run
RUN_DIRS = ("analysis", "backtest")


def _finite(value):
    """``value`` with every float that is NaN or infinite replaced by None, recursively."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _is_runs(name: str) -> bool:
    return name in RUN_FILES + RUN_DIRS + (LOCK,) or any(fnmatch.fnmatch(name, p) for p in RUN_PATTERNS)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


class RunDir:
    def __init__(self, path) -> None:
        self.path = Path(path)

    def file(self, name: str) -> Path:
        return self.path / name

    @property
    def checkpoint(self) -> Path:
        return self.path / CHECKPOINT

    def is_run(self) -> bool:
        return (self.path / CONFIG).is_file() and (self.path / CHECKPOINT).is_file()

    def require_run(self) -> None:
        if not self.path.is_dir():
            raise UserError(f"run directory not found: {self.path}")
        if not self.is_run():
            raise UserError(f"{self.path} is not an rnntrain run directory (no {CONFIG} and {CHECKPOINT}); "
                            "give the --out directory of an earlier 'rnntrain train'")

    def create(self, config: RunConfig, overwrite: bool = False) -> None:
        """Make the directory and write config.toml; refuses to clobber an earlier run."""
        if self.path.exists() and not self.path.is_dir():
            raise UserError(f"--out {self.path} exists and is not a directory")
        if self.path.is_dir() and any(self.path.iterdir()):
            if self.is_run() and not overwrite:
                raise UserError(f"{self.path} already holds a run: continue it with --resume {self.path}, "
                                "replace it with --overwrite, or choose another --out")
            foreign = [p.name for p in self.path.iterdir() if not _is_runs(p.name)]
            if foreign:
                raise UserError(f"--out {self.path} holds files that are not a run's ({', '.join(sorted(foreign)[:3])}); "
                                "choose another --out")
            ours = [p for p in self.path.iterdir() if _is_runs(p.name) and p.name != LOCK]
            kept = [p.name for p in ours if not fnmatch.fnmatch(p.name, ".*.tmp")]
            if kept and not overwrite:  # nothing is deleted without being asked to
                raise UserError(f"--out {self.path} holds a run's files but no checkpoint ({', '.join(sorted(kept)[:3])}); "
                                f"replace them with --overwrite, or choose another --out")
            for target in ours:
                if target.is_symlink() or not target.is_dir():
                    target.unlink(missing_ok=True)  # a link goes, never what it points to
                else:
                    shutil.rmtree(target)
        self.path.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.path / CONFIG, dumps(config))

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the run's lock (a file with this process's pid) while writing it: a second
        writer is refused in one line; a lock whose process has died is taken over, saying so."""
        self.path.mkdir(parents=True, exist_ok=True)
        lock = self.path / LOCK
        while True:
            try:
                fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
                break
            except FileExistsError:
                try:
                    owner = int(lock.read_text().strip() or 0)
                except (OSError, ValueError):
                    owner = 0
                if owner and owner != os.getpid() and _alive(owner):
                    raise UserError(f"{self.path} is being written by another rnntrain (pid {owner}); wait for "
                                    f"it to finish, or choose another --out") from None
                print(f"rnntrain: {self.path} was locked by pid {owner or '?'}, which is gone; taking the lock over",
                      file=sys.stderr)
                lock.unlink(missing_ok=True)
        with os.fdopen(fd, "w") as f:
            f.write(str(os.getpid()))
        try:
            yield
        finally:
            lock.unlink(missing_ok=True)

    def clean_orphans(self) -> None:
        """Remove the temporary files of writes a kill cut short (never a finished file)."""
        for p in self.path.glob(".*.tmp"):
            if p.is_file():
                p.unlink(missing_ok=True)

    def read_config(self) -> RunConfig:
        return from_dict(read_toml(self.path / CONFIG))

    def write_metrics(self, history: List[Dict[str, Any]]) -> None:
        keys: List[str] = []
        for row in history:
            keys += [k for k in row if k not in keys]
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
        writer.writeheader()
        for row in history:
            writer.writerow({k: (f"{v:.10g}" if isinstance(v, float) else v) for k, v in row.items()})
        atomic_write_text(self.path / METRICS, buf.getvalue())

    def write_summary(self, summary: Dict[str, Any]) -> None:
        """summary.json; a non-finite number is written as null (JSON has no NaN)."""
        text = json.dumps(_finite(summary), indent=2, sort_keys=False, allow_nan=False)
        atomic_write_text(self.path / SUMMARY, text + "\n")

    def read_summary(self) -> Dict[str, Any]:
        return json.loads((self.path / SUMMARY).read_text(encoding="utf-8"))

"""The run directory: everything needed to resume, evaluate, forecast or sample.

::

    RUN_DIR/
      config.toml      resolved config (every default written out)
      metrics.csv      one row per round: train_* and val_* metrics, lr, clipped fraction, time
      checkpoint.pt    model, algorithm state (optimizer, ...), RNG states, progress, task state
      summary.json     final metrics on every split, stop reason, timings, task extras
      loss.png         train/validation loss curves
      train_metrics.png  every other train_* metric family (fitness, diversity, lr, ...)
      report.html      all of the above in one self-contained page (reporting/compare.py)
      ...              the task's own plots (forecast.png) and samples (sample.txt)
"""
from __future__ import annotations

import csv
import fnmatch
import functools
import hashlib
import io
import json
import math
import os
import shutil
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

from ..config.run import RunConfig, dumps, from_dict, read_toml
from ..errors import UserError
from .checkpoint import atomic_write_text

CONFIG = "config.toml"
METRICS = "metrics.csv"
CHECKPOINT = "checkpoint.pt"
SUMMARY = "summary.json"
LOCK = ".rnntrain.lock"  # the pid of the process writing the run (RunDir.locked)
# --overwrite moves the old run here and deletes it once the new run has its first
# checkpoint; until then a crash leaves the old run to be put back (RunDir.recover)
PREVIOUS = ".replaced-run"
# the old run's files move here one by one, and the folder is renamed to PREVIOUS when all
# are in: a kill between two moves leaves this, which RunDir.recover empties back in place
SETTING_ASIDE = ".replaced-run.partial"
# what the trainer itself writes; .NAME.*.tmp: a write (training/checkpoint.py:
# atomic_write) that a kill cut short, removed when the run restarts
TRAINER_FILES = (CONFIG, METRICS, CHECKPOINT, SUMMARY, "loss.png", "train_metrics.png", "report.html", LOCK,
                 PREVIOUS, SETTING_ASIDE, ".*.tmp")
# written later by `rnntrain analyze` and `rnntrain backtest RUN_DIR`; part of the run
RUN_DIRS = ("analysis", "backtest")


@functools.lru_cache(maxsize=None)  # the registries are fixed once imported
def run_patterns() -> Tuple[str, ...]:
    """Every name a run directory of any task may hold: the trainer's files, each task's
    ``FILES`` (what its report writes) and each monitor's files, read from them."""
    from ..tasks import TASKS
    from .monitors import MONITORS
    tasks = [pattern for _, task in TASKS.values() for pattern in task.FILES]
    monitors = [name for _, files in MONITORS.values() for name in files]
    return TRAINER_FILES + RUN_DIRS + tuple(dict.fromkeys(tasks + monitors))


def _real_dir(path: Path) -> bool:
    """A directory, not a link to one (--overwrite's set-aside folders are never followed)."""
    return path.is_dir() and not path.is_symlink()


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
    return any(fnmatch.fnmatch(name, pattern) for pattern in run_patterns())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def _remove(path: Path) -> None:
    """Delete a file, a link (never what it points to) or a directory tree (rmtree unlinks
    the links inside it too, without following them)."""
    if path.is_symlink() or not path.is_dir():
        path.unlink(missing_ok=True)
    else:
        shutil.rmtree(path)


class RunDir:
    def __init__(self, path) -> None:
        self.path = Path(path)
        self._metrics: Optional[Tuple[List[str], int]] = None  # metrics.csv as last written: columns, rows

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
        if not self.is_run() and self.replacing():
            raise UserError(f"{self.path} holds a run that an --overwrite was replacing when it stopped; "
                            f"'rnntrain train --resume {self.path}' puts it back and continues it")
        if not self.is_run():
            raise UserError(f"{self.path} is not an rnntrain run directory (no {CONFIG} and {CHECKPOINT}); "
                            "give the --out directory of an earlier 'rnntrain train'")

    def create(self, config: RunConfig, overwrite: bool = False) -> None:
        """Make the directory and write config.toml; refuses to clobber an earlier run."""
        if self.path.exists() and not self.path.is_dir():
            raise UserError(f"--out {self.path} exists and is not a directory")
        self.recover()
        if self.path.is_dir() and any(self.path.iterdir()):
            if self.is_run() and not overwrite:
                raise UserError(f"{self.path} already holds a run: continue it with --resume {self.path} "
                                f"(rnntrain.resume), replace it with --overwrite (overwrite=True in Python), "
                                f"or choose another --out")
            foreign = [p.name for p in self.path.iterdir() if not _is_runs(p.name)]
            if foreign:
                raise UserError(f"--out {self.path} holds files that are not a run's ({', '.join(sorted(foreign)[:3])}); "
                                "choose another --out")
            self.clean_orphans()
            kept = [p for p in self.path.iterdir() if _is_runs(p.name) and p.name != LOCK]
            if kept and not overwrite:  # nothing is deleted without being asked to
                raise UserError(f"--out {self.path} holds a run's files but no checkpoint "
                                f"({', '.join(sorted(p.name for p in kept)[:3])}); replace them with "
                                f"--overwrite (overwrite=True in Python), or choose another --out")
            if kept:  # set aside (renames: a link moves as a link), deleted by commit()
                aside = self.path / SETTING_ASIDE
                aside.mkdir()
                for target in kept:
                    os.replace(target, aside / target.name)
                os.replace(aside, self.path / PREVIOUS)  # all of the old run at once
        self.path.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.path / CONFIG, dumps(config))

    def replacing(self) -> bool:
        """An --overwrite is under way (or was cut short): the old run is (being) set aside."""
        return any(_real_dir(self.path / name) for name in (PREVIOUS, SETTING_ASIDE))

    def commit(self) -> None:
        """The new run has a checkpoint: delete the run --overwrite set aside for it."""
        if _real_dir(self.path / PREVIOUS):
            _remove(self.path / PREVIOUS)

    def recover(self) -> None:
        """After an --overwrite that stopped early: with the new run's first checkpoint
        written, finish it (delete the old run); without, put the old run back."""
        if not self.replacing():
            return
        aside = self.path / SETTING_ASIDE
        if aside.is_dir():  # stopped while setting the old run aside: nothing new was written yet
            for p in aside.iterdir():
                os.replace(p, self.path / p.name)
            aside.rmdir()
            print(f"rnntrain: {self.path}: put back the run that --overwrite was replacing (it stopped "
                  f"while setting the old run aside)", file=sys.stderr)
            return
        if (self.path / CHECKPOINT).is_file():
            self.commit()
            return
        for p in self.path.iterdir():  # the new run's first files
            if p.name not in (LOCK, PREVIOUS) and _is_runs(p.name):
                _remove(p)
        for p in (self.path / PREVIOUS).iterdir():
            os.replace(p, self.path / p.name)
        (self.path / PREVIOUS).rmdir()
        print(f"rnntrain: {self.path}: put back the run that --overwrite was replacing (the new run "
              f"stopped before its first checkpoint)", file=sys.stderr)

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
        """metrics.csv holding ``history``'s rows: the rows it lacks appended when the file
        holds the earlier ones under the same columns (one write call, so a kill never leaves
        half a row: the cost per round stays constant), else the whole file rewritten
        atomically."""
        path = self.path / METRICS
        written = self._metrics[1] if self._metrics is not None else -1
        appending = 0 <= written < len(history)
        new = history[written:] if appending else history
        keys: List[str] = list(self._metrics[0]) if appending else []
        for row in new:  # the columns: constant time per round
            keys += [k for k in row if k not in keys]
        if appending and keys == self._metrics[0] and path.is_file():
            fd = os.open(path, os.O_WRONLY | os.O_APPEND)
            try:
                os.write(fd, _csv_rows(keys, new, header=False).encode("utf-8"))
            finally:
                os.close(fd)
        else:
            atomic_write_text(path, _csv_rows(keys, history, header=True))
        self._metrics = (keys, len(history))

    def write_summary(self, summary: Dict[str, Any]) -> None:
        """summary.json; a non-finite number is written as null (JSON has no NaN)."""
        text = json.dumps(_finite(summary), indent=2, sort_keys=False, allow_nan=False)
        atomic_write_text(self.path / SUMMARY, text + "\n")

    def read_summary(self) -> Dict[str, Any]:
        return json.loads((self.path / SUMMARY).read_text(encoding="utf-8"))


def _csv_rows(keys: List[str], rows: List[Dict[str, Any]], *, header: bool) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
    if header:
        writer.writeheader()
    for row in rows:
        writer.writerow({k: (f"{v:.10g}" if isinstance(v, float) else v) for k, v in row.items()})
    return buf.getvalue()


DATA_FIELDS = ("data", "test_data", "text")  # task config fields that name the user's files


def data_fingerprints(task_config) -> Dict[str, str]:
    """{path: SHA-256} of the files a task config reads (a resumed run must read the same)."""
    out = {}
    for name in DATA_FIELDS:
        value = getattr(task_config, name, "")
        if isinstance(value, str) and value and Path(value).is_file():
            digest = hashlib.sha256()
            with open(value, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
            out[value] = digest.hexdigest()
    return out

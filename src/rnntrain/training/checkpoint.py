"""Checkpoints: written atomically, loaded without executing code.

A checkpoint is a plain nested dict of tensors, numbers, strings and lists, saved with
``torch.save`` to a temporary file in the same directory, flushed to disk, then renamed
over the old one (``os.replace`` is atomic on POSIX and Windows): a crash or Ctrl-C at
any moment leaves either the old or the new checkpoint, never a torn one. Loading uses
``torch.load(weights_only=True)``, which refuses anything but tensors and plain data.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ..errors import UserError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _umask()  # read once: os.umask can only be read by setting it


def atomic_write(path: Path, write: Callable[[Any], None], mode: str = "wb") -> None:
    """Call ``write(file)`` on a temporary file next to ``path``, then rename it to ``path``."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; run files are as readable as plots
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda f: f.write(text), mode="w")


def to_safe(obj: Any) -> Any:
    """Replace numpy arrays and scalars by tensors and Python numbers (weights_only-loadable)."""
    if isinstance(obj, dict):
        return {k: to_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_safe(v) for v in obj)
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(obj))
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def save_checkpoint(path: Path, state: dict) -> None:
    atomic_write(path, lambda f: torch.save(to_safe(state), f))


# what every rnntrain checkpoint holds (Trainer.state_dict)
CHECKPOINT_KEYS = frozenset({"format", "round", "model", "algorithm", "rng", "history", "best", "task"})


def load_checkpoint(path: Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"no checkpoint at {path}: is this a run directory written by rnntrain train?")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a torn, empty or foreign file: say so in one line
        text = str(e)
        if "Weights only load failed" in text:  # never pass on torch's advice to load it unsafely
            raise UserError(f"{path} is not an rnntrain checkpoint: it holds objects a checkpoint never "
                            f"holds, so it was not loaded; restore the run's own checkpoint.pt") from None
        first = text.splitlines()[0] if text.strip() else "empty or truncated file"
        raise UserError(f"cannot read checkpoint {path} ({type(e).__name__}: {first}); it is damaged or "
                        f"not a checkpoint: restore it, or start a new run") from None
    missing = sorted(CHECKPOINT_KEYS - set(state)) if isinstance(state, dict) else ["everything"]
    if missing:
        raise UserError(f"{path} is a torch file but not an rnntrain checkpoint (it lacks {', '.join(missing)}); "
                        f"restore the run's own checkpoint.pt, or start a new run")
    return state


def detached(state: Any) -> Any:
    """A copy of a state_dict that later training cannot change: its containers copied, its
    tensors and arrays cloned, other leaves (numbers, strings) shared; a third of
    ``copy.deepcopy``'s time, which the snapshot of every round cannot afford at small scale."""
    if isinstance(state, dict):
        return {k: detached(v) for k, v in state.items()}
    if isinstance(state, (list, tuple)):
        return type(state)(detached(v) for v in state)
    if isinstance(state, torch.Tensor):
        return state.detach().clone()
    return state.copy() if hasattr(state, "copy") and not isinstance(state, (str, bytes)) else state

r"""Next-value prediction on a real-valued stream, for online learning.

A series (T, C) is split in time order; each split is cut into S parallel streams and
handed out in consecutive chunks of ``seq_len`` steps, like the text task::

    inputs   (S, L, C)   z[s*m + kL : s*m + kL + L]          (scaled on the train split)
    targets  (S, L, C')  z[s*m + kL + 1 : s*m + kL + L + 1]   (the target columns, next step)

so batch k+1 continues batch k (``continues=True``) and an online algorithm sees one
endless stream per row. The loss is the MSE at every step. Series: the built-ins of
:mod:`.series`, and ``oscillator-switch``: the damped driven oscillator whose drive (amplitude,
frequency) changes every ``switch_every`` steps, for learning under changing dynamics.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, Optional

import numpy as np
import torch

from ..config.schema import check
from ..core import detach_state
from .base import Batch, Task, TaskSpec, evaluating, mse
from .scaling import SCALES, Scaler
from .series import BUILTIN_SERIES, Series, builtin_series, check_split, oscillator, split_bounds

STREAM_SERIES = BUILTIN_SERIES + ("oscillator-switch",)
# (force, omega) of the drive, cycled by oscillator-switch
DRIVES = ((1.0, 0.5), (2.0, 1.3), (0.5, 0.3), (1.5, 0.9))


def switching_oscillator(length: int, switch_every: int) -> Series:
    """The seed's oscillator whose drive cycles through :data:`DRIVES` every ``switch_every``
    steps; each segment starts from the previous one's final position and velocity."""
    parts, x0, v0 = [], 1.0, 0.0
    for k, start in enumerate(range(0, length, switch_every)):
        n = min(switch_every, length - start) + 1
        force, omega = DRIVES[k % len(DRIVES)]
        seg = oscillator(n, force=force, omega=omega, x0=x0, v0=v0).values  # (n, 3)
        parts.append(seg[:-1])
        x0, v0 = seg[-1, 0], seg[-1, 1]
    return Series(np.concatenate(parts)[:length], ["x", "v", "F"], None, "oscillator-switch")


@dataclass(frozen=True)
class StreamConfig:
    """Next-step prediction on a real-valued stream (online learning)."""

    series: str = "oscillator-switch"  # sine | noisy-sine | oscillator | oscillator-switch
    length: int = 4000  # rows of the series
    switch_every: int = 1000  # oscillator-switch: steps between changes of the drive
    columns: tuple[str, ...] = ()  # input columns (empty: all)
    targets: tuple[str, ...] = ()  # predicted columns (empty: the inputs)
    seq_len: int = 50  # steps per chunk handed to the algorithm
    split: tuple[float, ...] = (0.8, 0.1, 0.1)  # train/val/test fractions, in time order
    scale: str = "standard"  # none | standard | minmax, fitted on the train split

    def __post_init__(self) -> None:
        check(self.series in STREAM_SERIES, f"unknown stream series '{self.series}'; choose one "
                                            f"of: {', '.join(STREAM_SERIES)}")
        check(self.length >= 3, f"length must be >= 3, got {self.length}")
        check(self.switch_every >= 1, f"switch_every must be >= 1, got {self.switch_every}")
        check(self.seq_len >= 1, f"seq_len must be >= 1, got {self.seq_len}")
        check_split(self.split, "stream split")
        check(self.scale in SCALES, f"unknown scale '{self.scale}'; choose one of: {', '.join(SCALES)}")


class StreamTask(Task):
    """Per-step regression of the next value; spec per_step=True."""

    name = "stream"

    def __init__(self, config: StreamConfig, *, seed: int = 0, device="cpu",
                 dtype: torch.dtype = torch.float32):
        self.config, self.seed = config, seed
        self.device, self.dtype = torch.device(device), dtype
        if config.series == "oscillator-switch":
            self.series = switching_oscillator(config.length, config.switch_every)
        else:
            self.series = builtin_series(config.series, config.length, seed)
        cols = self.series.columns
        self.inputs = list(config.columns) or list(cols)
        self.targets = list(config.targets) or list(self.inputs)
        for kind, names in (("input", self.inputs), ("target", self.targets)):
            unknown = [c for c in names if c not in cols]
            check(not unknown, f"unknown {kind} column(s) {unknown}; available: {', '.join(cols)}")
        self.in_idx = [cols.index(c) for c in self.inputs]
        self.tgt_idx = [cols.index(c) for c in self.targets]
        self.spec = TaskSpec(input_size=len(self.inputs), output_size=len(self.targets),
                             tokens=False, per_step=True)
        self.bounds = split_bounds(len(self.series), config.split)
        a, b = self.bounds["train"]
        check(b - a >= 2, f"the train split has {b - a} rows; a stream needs at least 2")
        self.scaler = Scaler(config.scale).fit(self.series.values[a:b])
        z = self.scaler.transform(self.series.values)  # (T, C)
        self.z = torch.as_tensor(z, dtype=dtype)

    def split_size(self, split: str) -> int:
        a, b = self.bounds[split]
        return max(0, b - a - 1)

    def batches(self, split: str, batch_size: int, *,
                generator: Optional[torch.Generator] = None) -> Iterator[Batch]:
        """Consecutive (S, L, C) chunks of S = min(batch_size, fitting) streams (not shuffled)."""
        a, b = self.bounds[split]
        n, L = b - a, self.config.seq_len
        if n < 2:
            return
        streams = max(1, min(batch_size, (n - 1) // L))
        m = (n - 1) // streams  # input steps per stream
        rows = a + np.arange(streams)[:, None] * m + np.arange(m)  # (S, m)
        x = self.z[torch.as_tensor(rows)][:, :, self.in_idx]  # (S, m, C)
        y = self.z[torch.as_tensor(rows + 1)][:, :, self.tgt_idx]  # (S, m, C')
        for k in range(0, m, L):
            yield Batch(x[:, k:k + L].to(self.device), y[:, k:k + L].to(self.device),
                        continues=k > 0)

    def loss(self, outputs: torch.Tensor, batch: Batch) -> torch.Tensor:
        return mse(outputs, batch.targets)

    def evaluate(self, model, split: str) -> Dict[str, float]:
        """Stateful one-stream pass over the split: MSE of the next-step prediction (scaled)."""
        total, count, state = 0.0, 0, None
        with evaluating(model):
            for batch in self.batches(split, 1):
                out, state = model(batch.inputs, state if batch.continues else None)
                state = detach_state(state)
                total += float(self.loss(out, batch)) * batch.targets.numel()
                count += batch.targets.numel()
        return {"loss": total / count} if count else {}

    def report(self, model, out_dir: Path) -> Dict[str, Any]:
        return {}

    def state_dict(self) -> Dict[str, Any]:
        return {"scaler": self.scaler.state_dict(), "inputs": self.inputs, "targets": self.targets}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.scaler = Scaler(state["scaler"]["kind"])
        self.scaler.load_state_dict(state["scaler"])

    @classmethod
    def for_inference(cls, config: StreamConfig, state: Dict[str, Any], *, device="cpu",
                      dtype: torch.dtype = torch.float32) -> "StreamTask":
        task = cls(config, device=device, dtype=dtype)  # built-in series: cheap to rebuild
        task.load_state_dict(state)
        return task

r"""Hochreiter & Schmidhuber's weight-guessing benchmarks: the latch and parity problems.

"LSTM can solve hard long time lag problems" (NIPS 1996) and "Bridging long time lags by
weight guessing and LSTM" show that random weight guessing solves these tasks (once used
to show off long-time-lag algorithms) in few trials. Both are many-to-one classification
of sequences with one input line; the task reads the model's output through tanh
(the paper's tanh output unit), so targets are +-1 and the loss is MSE(tanh(out), y)::

    latch (variant II): x_1 = +-1 (the class), x_t ~ N(0, 0.2) for t > 1 (variance 0.2),
                        target at sequence end = x_1               (paper: RG, 22 trials)
    parity:             x_t = +-1 uniformly, target = prod_t x_t (+1: even number of -1)

inputs (N, L, 1), targets (N, 1). An example is learned when |tanh(out) - y| <= tolerance;
the paper's criterion is every training sequence learned (``solved_fraction = 1``).
The validation split is a fresh draw of the same size (generalisation).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, Optional

import torch
from torch import Tensor

from ..config.schema import check
from .base import Batch, Task, TaskSpec, evaluating

PROBLEMS = ("latch", "parity")


@dataclass(frozen=True)
class GuessingConfig:
    problem: str = "latch"  # latch (Bengio et al.'s latch, H&S variant II) | parity
    length: int = 100  # time steps per sequence
    examples: int = 100  # training sequences (and as many validation sequences)
    noise: float = 0.2  # latch: variance of the Gaussian noise after the first step

    def __post_init__(self) -> None:
        check(self.problem in PROBLEMS, f"unknown problem '{self.problem}': choose {', '.join(PROBLEMS)}")
        check(self.length >= 1, f"length must be >= 1, got {self.length}")
        check(self.examples >= 2, f"examples must be >= 2, got {self.examples}")
        check(self.noise >= 0, f"noise must be >= 0, got {self.noise}")


class GuessingTask(Task):
    """Latch or parity sequences; see the module docstring."""

    name = "guessing"
    spec = TaskSpec(input_size=1, output_size=1, tokens=False, per_step=False)

    def __init__(self, config: GuessingConfig, *, seed: int = 0, device="cpu",
                 dtype: torch.dtype = torch.float32) -> None:
        self.config, self.dtype = config, dtype
        g = torch.Generator().manual_seed(seed)
        self.data = {split: self._draw(g) for split in ("train", "val")}
        self.data = {k: (x.to(device), y.to(device)) for k, (x, y) in self.data.items()}

    def _draw(self, g: torch.Generator):
        c, N, L = self.config, self.config.examples, self.config.length
        sign = torch.randint(0, 2, (N, L, 1), generator=g).to(self.dtype) * 2 - 1  # (N, L, 1) +-1
        if c.problem == "latch":
            x = torch.randn(N, L, 1, generator=g, dtype=self.dtype) * c.noise ** 0.5
            x[:, 0] = sign[:, 0]
            y = sign[:, 0]  # (N, 1)
        else:
            x, y = sign, sign.prod(1)  # (N, L, 1), (N, 1)
        return x, y

    def split_size(self, split: str) -> int:
        return len(self.data[split][0]) if split in self.data else 0

    def batches(self, split: str, batch_size: int, *,
                generator: Optional[torch.Generator] = None) -> Iterator[Batch]:
        x, y = self.data[split]
        order = torch.randperm(len(x), generator=generator) if split == "train" else torch.arange(len(x))
        for i in range(0, len(x), batch_size):
            idx = order[i:i + batch_size]
            yield Batch(x[idx], y[idx])

    def loss(self, outputs: Tensor, targets: Tensor) -> Tensor:
        return ((torch.tanh(outputs) - targets) ** 2).mean()

    def within_tolerance(self, outputs: Tensor, targets: Tensor, tolerance: float) -> Tensor:
        return (torch.tanh(outputs) - targets).abs().reshape(outputs.shape[0], -1).amax(1) <= tolerance

    def evaluate(self, model, split: str) -> Dict[str, float]:
        if split not in self.data:
            return {}
        x, y = self.data[split]
        with evaluating(model):
            out = model(x, None)[0]
        return {"loss": float(self.loss(out, y)),
                "accuracy": float((torch.sign(out) == y).to(torch.float64).mean())}

    def report(self, model, out_dir: Path) -> Dict[str, Any]:
        return {}

    @classmethod
    def for_inference(cls, config: GuessingConfig, state: Dict[str, Any], *, device="cpu",
                      dtype: torch.dtype = torch.float32) -> "GuessingTask":
        return cls(config, device=device, dtype=dtype)

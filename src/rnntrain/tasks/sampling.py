r"""Scheduled sampling (Bengio, Vinyals, Jaitly & Shazeer 2015): how often an encoder-decoder
reads the teacher's previous target rather than its own prediction while it trains.

The teacher-forcing probability in training round i (0-based) is, with k the schedule's
constant and m a floor::

    none             1 (always the teacher: plain teacher forcing)
    linear           max(m, 1 - k i)
    exponential      max(m, k^i)                 0 < k < 1
    inverse-sigmoid  max(m, k / (k + exp(i / k)))   k >= 1

The paper decays per minibatch update; rnntrain decays per training round, so that the
schedule does not depend on the batch size and a resumed run (which restarts at its round)
follows it exactly. Evaluation always forces (the loss is the teacher-forced one; metrics
decode freely).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..config.schema import check

DEFAULT_K = {"none": 0.0, "linear": 0.05, "exponential": 0.9, "inverse-sigmoid": 5.0}


@dataclass(frozen=True)
class SamplingConfig:
    schedule: str = "none"  # none | linear | exponential | inverse-sigmoid
    k: float = 0.0  # the schedule's constant; 0: linear 0.05, exponential 0.9, inverse-sigmoid 5
    min: float = 0.0  # the teacher-forcing probability never falls below this

    def __post_init__(self) -> None:
        check(self.schedule in DEFAULT_K, f"sampling schedule must be one of {', '.join(DEFAULT_K)}, "
              f"got '{self.schedule}'")
        k = self.k
        check(k >= 0, f"sampling k must be >= 0, got {k}")
        check(k == 0 or self.schedule != "exponential" or k < 1, f"exponential sampling needs 0 < k < 1, got {k}")
        check(k == 0 or self.schedule != "inverse-sigmoid" or k >= 1, f"inverse-sigmoid sampling needs k >= 1, got {k}")
        check(0 <= self.min <= 1, f"sampling min must be in [0, 1], got {self.min}")

    def forcing(self, round: int) -> float:
        """The probability of reading the teacher's input in training round ``round``."""
        if self.schedule == "none":
            return 1.0
        k = self.k or DEFAULT_K[self.schedule]
        eps = {"linear": lambda: 1.0 - k * round, "exponential": lambda: k ** round,
               "inverse-sigmoid": lambda: k / (k + math.exp(min(round / k, 700.0)))}[self.schedule]()
        return max(self.min, min(1.0, eps))

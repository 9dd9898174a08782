r"""Random weight guessing: the baseline every population method is compared with.

Hochreiter & Schmidhuber (1996, "LSTM can solve hard long time lag problems", and
"Bridging long time lags by weight guessing and LSTM"): REPEAT draw every weight from
U(-init_range, init_range) and test the net on the training set UNTIL solved. Here a
generation is P independent guesses evaluated in one batch; the best guess is kept,
and ``evaluations_to_solve`` counts the trials up to the first solving guess.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict

import torch

from ..base import register
from .base import PopulationAlgorithm, PopulationOptions


@dataclass(frozen=True)
class GuessOptions(PopulationOptions):
    pass  # guesses per generation = population; weight range = init_range


@register
class RandomGuessing(PopulationAlgorithm):
    """Independent uniform guesses of the whole weight vector; see the module docstring."""

    name = "guess"
    label = "guessing"
    Options = GuessOptions

    def generation(self) -> Dict[str, float]:
        P, r = self.options.population, self.options.init_range
        pop = (torch.rand(P, self.D, generator=self.ctx.generator, dtype=self.dtype) * 2 - 1) * r
        self.evaluate(pop)
        return {"evaluations_to_solve": float(self.solved_at or 0)}

    def search_state(self) -> Dict[str, Any]:
        return {}

    def load_search_state(self, state: Dict[str, Any]) -> None:
        pass

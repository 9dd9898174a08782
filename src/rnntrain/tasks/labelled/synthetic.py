r"""Built-in labelled data sets, generated from a seed (the default data of each labelled task,
so ``rnntrain train --task classify`` runs with no file; real data comes from files or aeon).

- ``waves``: one noisy periodic signal per sequence, 24-64 steps, shape one of sine,
  square, sawtooth, triangle, with a random frequency (0.03-0.12 cycles a step) and phase.
  Classify: the shape. Regress: the frequency (cycles per step).
- ``segments``: 2-4 segments of 8-24 steps, each a different shape; tag: the shape at
  every step.
- ``spelling``: a word of 2-6 symbols over 5 letters (a-e); each letter sounds for 2-4
  frames as a noisy 5-dimensional code, with 0-2 silent frames between; transcribe: the
  word (a toy of Graves et al. 2006's unsegmented speech).
"""
from __future__ import annotations

from typing import Callable, Dict

import numpy as np

from .sequences import SequenceSet

SHAPES = ("sine", "square", "sawtooth", "triangle")
LETTERS = "abcde"


def _wave(shape: str, phase: np.ndarray) -> np.ndarray:
    u = phase % 1.0
    return {"sine": np.sin(2 * np.pi * u), "square": np.where(u < 0.5, 1.0, -1.0),
            "sawtooth": 2 * u - 1, "triangle": 1 - 4 * np.abs(u - 0.5)}[shape]


def waves(n: int, rng: np.random.Generator, target: str = "shape") -> SequenceSet:
    xs, labels = [], []
    for _ in range(n):
        L, k = int(rng.integers(24, 65)), int(rng.integers(len(SHAPES)))
        freq = float(rng.uniform(0.03, 0.12))
        x = _wave(SHAPES[k], rng.uniform() + freq * np.arange(L)) + 0.2 * rng.standard_normal(L)
        xs.append(x[:, None])
        labels.append(SHAPES[k] if target == "shape" else freq)
    return SequenceSet(xs, labels, ["x"], source="waves")


def segments(n: int, rng: np.random.Generator) -> SequenceSet:
    xs, labels = [], []
    for _ in range(n):
        parts, tags = [], []
        prev = -1
        for _ in range(int(rng.integers(2, 5))):
            k = int((prev + rng.integers(1, len(SHAPES))) % len(SHAPES)) if prev >= 0 else int(rng.integers(len(SHAPES)))
            L = int(rng.integers(8, 25))
            parts.append(_wave(SHAPES[k], rng.uniform() + 0.125 * np.arange(L)))
            tags += [SHAPES[k]] * L
            prev = k
        x = np.concatenate(parts) + 0.15 * rng.standard_normal(len(tags))
        xs.append(x[:, None])
        labels.append(np.array(tags, dtype=object))
    return SequenceSet(xs, labels, ["x"], source="segments")


def spelling(n: int, rng: np.random.Generator) -> SequenceSet:
    codes = np.eye(len(LETTERS)) * 2 - 1  # letter k: +1 on dimension k, -1 elsewhere
    xs, labels = [], []
    for _ in range(n):
        word = "".join(LETTERS[int(i)] for i in rng.integers(len(LETTERS), size=int(rng.integers(2, 7))))
        frames = []
        for ch in word:
            frames += [np.zeros(len(LETTERS))] * int(rng.integers(0, 3))
            frames += [codes[LETTERS.index(ch)]] * int(rng.integers(2, 5))
        x = np.array(frames) + 0.3 * rng.standard_normal((len(frames), len(LETTERS)))
        xs.append(x)
        labels.append(word)
    return SequenceSet(xs, labels, [f"band_{c}" for c in LETTERS], source="spelling")


GENERATORS: Dict[str, Callable[..., SequenceSet]] = {
    "waves": waves, "waves-frequency": lambda n, rng: waves(n, rng, "frequency"),
    "segments": segments, "spelling": spelling,
}


def generate(name: str, n: int, seed: int) -> SequenceSet:
    """``n`` sequences of the built-in set ``name``, a function of ``seed`` alone."""
    data = GENERATORS[name](n, np.random.default_rng(seed))
    data.source = f"built-in '{name}'"
    return data

"""Training algorithms, all behind :class:`rnntrain.algorithms.base.Algorithm`.

Importing this package registers every built-in algorithm.
"""
from .base import ALGORITHMS, Algorithm, Context, get_algorithm, register
from . import bptt  # noqa: F401  (registers "bptt")

__all__ = ["ALGORITHMS", "Algorithm", "Context", "get_algorithm", "register"]

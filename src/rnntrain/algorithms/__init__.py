"""Training algorithms, all behind :class:`rnntrain.algorithms.base.Algorithm`.

Importing this package registers every built-in algorithm.
"""
from .base import ALGORITHMS, Algorithm, Context, get_algorithm, register
from . import bptt  # noqa: F401  (registers "bptt")
from . import rtrl  # noqa: F401  (registers "rtrl")
from . import uoro  # noqa: F401  (registers "uoro")
from . import snap  # noqa: F401  (registers "snap1", "snap2")
from . import crbp  # noqa: F401  (registers "crbp")
from . import esn  # noqa: F401  (registers "esn")
from . import hf  # noqa: F401  (registers "hf")
from .population import ga  # noqa: F401  (registers "ga")
from .population import pso  # noqa: F401  (registers "pso")
from .population import anneal  # noqa: F401  (registers "anneal")
from .population import cmaes  # noqa: F401  (registers "cmaes")
from .population import guess  # noqa: F401  (registers "guess")

__all__ = ["ALGORITHMS", "Algorithm", "Context", "get_algorithm", "register"]

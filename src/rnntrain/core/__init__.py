"""The recurrent core: cells written once as single steps, and the multi-layer ``Recurrent``."""
from . import variants  # noqa: F401  (registers the cell variants in CELLS)
from .cells import CELLS, Cell, get_cell
from .recurrent import Recurrent, constrain, constrained, detach_state, unroll_layer
from .regularize import Noise

__all__ = ["CELLS", "Cell", "Noise", "get_cell", "Recurrent", "constrain", "constrained", "detach_state", "unroll_layer"]

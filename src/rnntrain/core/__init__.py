"""The recurrent core: cells written once as single steps, and the multi-layer ``Recurrent``."""
from .cells import CELLS, Cell, get_cell
from .recurrent import Recurrent, detach_state, unroll_layer

__all__ = ["CELLS", "Cell", "get_cell", "Recurrent", "detach_state", "unroll_layer"]

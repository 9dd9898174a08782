"""The trainer loop, run directories and checkpoints."""
from .loaded import LoadedRun, load_run
from .trainer import RunResult, Trainer, resume, train

__all__ = ["LoadedRun", "RunResult", "Trainer", "load_run", "resume", "train"]

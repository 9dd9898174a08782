"""The trainer loop, run directories and checkpoints."""
from .trainer import LoadedRun, RunResult, Trainer, load_run, resume, train

__all__ = ["LoadedRun", "RunResult", "Trainer", "load_run", "resume", "train"]

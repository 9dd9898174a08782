"""What every gradient algorithm shares: a torch optimizer, gradient clipping and an LR schedule."""
from .updater import OPTIMIZERS, SCHEDULES, OptimConfig, Updater

__all__ = ["OPTIMIZERS", "SCHEDULES", "OptimConfig", "Updater"]

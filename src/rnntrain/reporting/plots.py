"""Run-level plots. Task-specific plots (forecasts) live with their task."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def plot_losses(history: List[Dict[str, Any]], path: Path, unit: str = "epoch") -> None:
    """Training and validation loss per round, log scale when losses are positive."""
    fig, ax = plt.subplots(figsize=(8, 4.5))
    rounds = [row["round"] for row in history]
    for key, label in (("train_loss", "training loss"), ("val_loss", "validation loss")):
        values = [row.get(key) for row in history]
        if any(v is not None for v in values):
            ax.plot(rounds, values, label=label)
    ax.set_xlabel(unit)
    ax.set_ylabel("loss")
    if all((row.get("train_loss") or 0) > 0 for row in history):
        ax.set_yscale("log")
    ax.set_title("Training and validation loss")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)

"""Monitors: measurements taken during training, switched on by the ``[monitor]`` table.

A monitor is a round callback ``(round, row) -> None`` built from the model, the task
and the run directory. ``MONITORS`` maps each ``MonitorConfig`` field (an "every N
rounds" count, 0 = off) to the callable that builds it, imported when switched on, so
the trainer neither branches on monitors nor imports analysis code it does not use.
Adding a monitor is adding a field to ``MonitorConfig`` and a line here.
"""
from __future__ import annotations

import dataclasses
import importlib
from pathlib import Path
from typing import List, Optional

# MonitorConfig field -> ("module:callable", files it writes into the run directory);
# called as f(model, task, every=N, out_dir=DIR)
MONITORS = {
    "gradient_flow_every": ("rnntrain.analysis.gradient_flow:GradientFlowMonitor", ("gradient_flow.csv",)),
    "tensorboard_every": ("rnntrain.training.tracking:ScalarTracker", ("tensorboard",)),
    "histograms_every": ("rnntrain.training.tracking:HistogramTracker", ("tensorboard",)),
}


def build_monitors(config, model, task, out_dir: Optional[Path]) -> List:
    """The callbacks of every monitor switched on in ``config`` (a MonitorConfig)."""
    callbacks = []
    for f in dataclasses.fields(config):
        every = getattr(config, f.name)
        if every:
            module, name = MONITORS[f.name][0].split(":")
            factory = getattr(importlib.import_module(module), name)
            callbacks.append(factory(model, task, every=every, out_dir=out_dir))
    return callbacks

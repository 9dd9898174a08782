"""A finished (or interrupted) run loaded back for inference, from its checkpoint alone."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Union

from ..config.run import RunConfig
from ..errors import UserError
from ..models import SequenceModel
from ..tasks import TASKS
from ..tasks.base import Task
from .build import DTYPES, make_model, resolve_device
from .checkpoint import load_checkpoint
from .run_dir import RunDir


@dataclass
class LoadedRun:
    """A finished (or interrupted) run loaded for inference: config, model with its weights, task."""

    config: RunConfig
    model: SequenceModel
    task: Task
    path: Path


def load_weights(model, weights) -> None:
    """model.load_state_dict(weights), or one line when they do not fit the model the
    run's config.toml builds (a hand-edited config)."""
    try:
        model.load_state_dict(weights)
    except RuntimeError as e:
        detail = str(e).splitlines()[1].strip() if len(str(e).splitlines()) > 1 else str(e)
        raise UserError(f"the checkpoint's weights do not fit the model config.toml describes ({detail[:160]}); "
                        f"was config.toml edited? restore it, or start a new run") from None


def load_run(out_dir: Union[str, Path]) -> LoadedRun:
    """The model of a run directory (best weights if the run restored them) and its task,
    rebuilt for inference from the checkpoint alone (no training data needed)."""
    run = RunDir(out_dir)
    run.require_run()
    config = run.read_config()
    state = load_checkpoint(run.checkpoint)
    _, task_cls = TASKS[config.task_kind]
    task = task_cls.for_inference(config.task, state["task"], device=resolve_device(config.device),
                                  dtype=DTYPES[config.dtype])
    model = make_model(config, task.spec)
    best = state["best"]["model"]
    load_weights(model, best if (config.train.restore_best and best is not None) else state["model"])
    model.eval()
    return LoadedRun(config, model, task, run.path)

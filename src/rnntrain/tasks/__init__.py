"""Learning problems: each task owns its data, loss and metrics (see :mod:`.base`).

``TASKS`` maps a task's config name to its (config dataclass, task class) pair, so the
CLI and the trainer never branch on which task runs. Adding a task is adding a file and
a line here.
"""
from .base import SPLITS, Batch, Task, TaskSpec
from .forecast import ForecastConfig, ForecastTask
from .panel import FORECASTING, PanelForecastTask
from .guessing import GuessingConfig, GuessingTask
from .languages import LANGUAGES, LanguageConfig, LanguageTask
from .scaling import SCALES, Scaler
from .series import (BUILTIN_SERIES, Series, builtin_series, load_csv, noisy_sine, oscillator,
                     sine, split_bounds)
from .text import CharTask, TextConfig, default_corpus
from .stream import StreamConfig, StreamTask
from .pathological import PathologicalConfig, PathologicalTask
from .labelled import (ClassifyConfig, ClassifyTask, LabelledConfig, RegressTask, Seq2SeqConfig,
                       Seq2SeqTask, TagConfig, TagTask, TranscribeConfig, TranscribeTask)

TASKS = {
    "forecast": (ForecastConfig, FORECASTING),  # one series, or many in a long file (tasks/panel.py)
    "text": (TextConfig, CharTask),
    "language": (LanguageConfig, LanguageTask),
    "stream": (StreamConfig, StreamTask),
    "guessing": (GuessingConfig, GuessingTask),
    "pathological": (PathologicalConfig, PathologicalTask),
    "classify": (ClassifyConfig, ClassifyTask),
    "regress": (LabelledConfig, RegressTask),
    "tag": (TagConfig, TagTask),
    "transcribe": (TranscribeConfig, TranscribeTask),
    "seq2seq": (Seq2SeqConfig, Seq2SeqTask),
}

__all__ = [
    "SPLITS", "Batch", "Task", "TaskSpec", "TASKS",
    "ForecastConfig", "ForecastTask", "PanelForecastTask", "LanguageConfig", "LanguageTask", "LANGUAGES", "CharTask", "TextConfig", "default_corpus",
    "Scaler", "SCALES", "Series", "BUILTIN_SERIES", "builtin_series", "load_csv",
    "sine", "noisy_sine", "oscillator", "split_bounds", "StreamConfig", "StreamTask",
    "PathologicalConfig", "PathologicalTask",
]

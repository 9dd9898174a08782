"""Labelled sequences of any length: classify, regress, tag, transcribe (see :mod:`.task`)."""
from .classify import ClassifyConfig, ClassifyTask
from .regress import RegressTask
from .sequences import SequenceSet, read_sequences
from .tag import TagConfig, TagTask
from .task import LabelledConfig, LabelledTask
from .transcribe import TranscribeConfig, TranscribeTask

__all__ = ["ClassifyConfig", "ClassifyTask", "RegressTask", "TagConfig", "TagTask", "LabelledConfig",
           "LabelledTask", "TranscribeConfig", "TranscribeTask", "SequenceSet", "read_sequences"]

"""Labelled sequences of any length: classify, regress, tag, transcribe, seq2seq (see :mod:`.task`)."""
from .classify import ClassifyConfig, ClassifyTask
from .regress import RegressTask
from .seq2seq import Seq2SeqConfig, Seq2SeqTask
from .sequences import SequenceSet, read_sequences
from .tag import TagConfig, TagTask
from .task import LabelledConfig, LabelledTask
from .transcribe import TranscribeConfig, TranscribeTask

__all__ = ["ClassifyConfig", "ClassifyTask", "RegressTask", "TagConfig", "TagTask", "LabelledConfig",
           "LabelledTask", "Seq2SeqConfig", "Seq2SeqTask", "TranscribeConfig", "TranscribeTask", "SequenceSet", "read_sequences"]

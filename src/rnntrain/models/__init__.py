"""Sequence models built on the recurrent core: encoder -> Recurrent -> readout."""
from .readouts import READOUTS, EveryStep, LastStep
from .sequence_model import ModelConfig, SequenceModel, build_model

__all__ = ["READOUTS", "EveryStep", "LastStep", "ModelConfig", "SequenceModel", "build_model"]

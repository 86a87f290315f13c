"""The model room: datasets and splits, training, evaluation, export and the torch-free :class:`Scorer`.

Importing this package imports neither torch nor onnxruntime; ``Scorer.load`` imports onnxruntime.
"""

from finsentry.model.scorer import ModelLoadError, Prediction, Scorer, ScoringInputError

__all__ = ["ModelLoadError", "Prediction", "Scorer", "ScoringInputError"]

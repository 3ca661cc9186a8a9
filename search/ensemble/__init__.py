"""Ensembles of a study's stored models: greedy selection on validation probabilities, one Keras model."""

from search.ensemble._model import build_ensemble, ensemble_gradcam, member_name
from search.ensemble._select import DEFAULT_ROUNDS, Selection, log_loss, select_ensemble

__all__ = [
    "DEFAULT_ROUNDS",
    "Selection",
    "build_ensemble",
    "ensemble_gradcam",
    "log_loss",
    "member_name",
    "select_ensemble",
]

"""Names of the search engines, importable without loading either engine."""

from __future__ import annotations

__all__ = ["ENGINES", "KERAS_TUNER", "OPTUNA", "TUNERS"]

OPTUNA = "optuna"
KERAS_TUNER = "keras-tuner"
ENGINES = (OPTUNA, KERAS_TUNER)
TUNERS = ("hyperband", "bayesian", "random")  # KerasTuner's oracles

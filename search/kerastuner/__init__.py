"""The KerasTuner engine over the same search space, trial runner and results store."""

from search.kerastuner._hyperparameters import HyperParametersTrial
from search.kerastuner._run import run_keras_tuner, tuner_directory
from search.kerastuner._tuner import ENGINE, TUNERS, SpaceHyperModel, SpaceTuner, make_oracle

__all__ = [
    "ENGINE",
    "TUNERS",
    "HyperParametersTrial",
    "SpaceHyperModel",
    "SpaceTuner",
    "make_oracle",
    "run_keras_tuner",
    "tuner_directory",
]

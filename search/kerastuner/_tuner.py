"""The KerasTuner engine: KerasTuner's oracles propose, our trial runner trains and measures.

Model definition, proposer and worker stay apart as in KerasTuner itself: the oracle
(Hyperband, Bayesian optimisation or random search) proposes hyperparameters from our
search space, :func:`search._trial.run_trial` builds and trains exactly what the Optuna
engine would, and every trial lands in the same results store with ``engine='keras-tuner'``.
The tuner's own state (oracle, trials) lives in a folder beside the study, and running the
same command again resumes it.
"""

from __future__ import annotations

import math
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import keras_tuner as kt

from search._engines import KERAS_TUNER, TUNERS
from search._recording import TrialRecorder
from search._runtime import run_and_record
from search._trial import TrialData
from search.kerastuner._hyperparameters import HyperParametersTrial
from search.logging import get_logger
from search.space import SearchSpace, TrialConfig

__all__ = ["ENGINE", "TUNERS", "SpaceHyperModel", "SpaceTuner", "make_oracle"]

ENGINE = KERAS_TUNER
_logger = get_logger(__name__)
OBJECTIVE = kt.Objective("val_loss", direction="min")  # the Optuna engine minimises the same value


class SpaceHyperModel(kt.HyperModel):  # type: ignore[misc]
    """Declares the search space to the oracle; the model itself is built by the trial runner."""

    def __init__(self, space: SearchSpace, weights: str, seed: int) -> None:
        super().__init__(name="cxr_search_space")
        self.space, self.weights, self.seed = space, weights, seed

    def config(self, hp: Any, number: int) -> TrialConfig:
        config = self.space.suggest(HyperParametersTrial(hp, number), weights=self.weights, seed=self.seed)  # type: ignore[arg-type]
        epochs = hp.values.get("tuner/epochs")
        # Hyperband's budget: this round trains for its own number of epochs.
        return config if epochs is None else replace(config, max_epochs=int(epochs))

    def build(self, hp: Any) -> TrialConfig:
        return self.config(hp, 0)  # only declares the hyperparameters: KerasTuner calls it on a blank space


def make_oracle(tuner: str, space: SearchSpace, seed: int, max_trials: int) -> kt.Oracle:
    """The named KerasTuner oracle over our objective, with the study's epoch budget for Hyperband."""
    if tuner == "hyperband":
        # Brackets repeat until --trials is reached: one Hyperband iteration of a short study is a few trials.
        epochs, iterations = space.training.max_epochs, 10**6
        return kt.oracles.HyperbandOracle(
            objective=OBJECTIVE, max_epochs=epochs, factor=3, hyperband_iterations=iterations, seed=seed
        )
    if tuner == "bayesian":
        return kt.oracles.BayesianOptimizationOracle(objective=OBJECTIVE, max_trials=max_trials, seed=seed)
    if tuner == "random":
        return kt.oracles.RandomSearchOracle(objective=OBJECTIVE, max_trials=max_trials, seed=seed)
    raise ValueError(f"`tuner` must be one of {', '.join(TUNERS)}, but got {tuner!r}.")


class SpaceTuner(kt.engine.base_tuner.BaseTuner):  # type: ignore[misc]
    """Runs each proposed trial through our trial runner and records it; returns its val_loss."""

    def __init__(
        self,
        *,
        oracle: kt.Oracle,
        hypermodel: SpaceHyperModel,
        data: TrialData,
        recorder: TrialRecorder,
        directory: Path,
        project_name: str,
        artifacts_target: Any,
        deadline: float | None = None,
        quiet: bool = False,
    ) -> None:
        super().__init__(oracle=oracle, hypermodel=hypermodel, directory=str(directory), project_name=project_name)
        self.data, self.recorder, self.artifacts_target = data, recorder, artifacts_target
        self.deadline, self.quiet = deadline, quiet

    def pre_create_trial(self) -> None:
        if self.deadline is not None and time.time() >= self.deadline:
            self.oracle.max_trials = len(self.oracle.trials)  # out of time: the oracle answers STOPPED

    def run_trial(self, trial: kt.engine.trial.Trial, *args: Any, **kwargs: Any) -> float:
        number = int(trial.trial_id)
        config = self.hypermodel.config(trial.hyperparameters, number)
        # A failure is recorded, then KerasTuner sees it (and counts it).
        outcome = run_and_record(config, self.data, self.recorder, self.artifacts_target, number)
        if not self.quiet:
            sens = outcome.metrics.covid_sensitivity if outcome.metrics else math.nan
            _logger.info(
                f"keras-tuner trial {number}: {config.backbone} freeze={config.freeze_depth} "
                f"epochs={outcome.fit.epochs_run} val_loss={outcome.fit.best_val_loss:.4f} covid_sens={sens:.3f} "
                f"({outcome.wall_time_s:.0f}s)"
            )
        return outcome.fit.best_val_loss

    def save_model(self, trial_id: str, model: Any, step: int = 0) -> None:
        pass  # models go to the study's artifact store through the recorder

    def load_model(self, trial: Any) -> Any:
        raise NotImplementedError("models of this engine are in the study's artifact store")

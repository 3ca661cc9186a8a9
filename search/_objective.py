"""The Optuna objective: suggest a config, run the trial, store everything, return val_loss."""

from __future__ import annotations

import gc
from dataclasses import asdict

import keras
import optuna

from search._engines import OPTUNA
from search._recording import TrialRecorder
from search._study import study_ranking
from search._trial import TrialData, run_trial
from search.artifacts import ArtifactStore
from search.space import SearchSpace
from search.store import ResultStore

__all__ = ["ENGINE", "Objective"]

ENGINE = OPTUNA


class Objective:
    """Callable objective of a study; one instance per worker process."""

    def __init__(
        self,
        *,
        study_name: str,
        space: SearchSpace,
        data: TrialData,
        store: ResultStore,
        artifact_store: ArtifactStore,
        weights: str,
        seed: int,
        keep_models: int = 5,
    ) -> None:
        self.space, self.data, self.weights, self.seed = space, data, weights, seed
        self.recorder = TrialRecorder(
            study_name=study_name,
            store=store,
            artifact_store=artifact_store,
            dataset_fingerprint=data.manifest.fingerprint,
            engine=ENGINE,
            ranking=study_ranking(space),
            keep_models=keep_models,
        )

    def __call__(self, trial: optuna.Trial) -> float:
        config = self.space.suggest(trial, weights=self.weights, seed=self.seed)
        trial.set_user_attr("config", asdict(config))

        def report(epoch: int, val_loss: float) -> bool:
            trial.report(val_loss, epoch)
            return bool(trial.should_prune())

        try:
            outcome = run_trial(config, self.data, report=report, keep_model=True)
        except BaseException as exc:  # record every failure (OOM, Ctrl-C, bugs), then let Optuna see it
            self.recorder.record_failure(trial.number, config, exc)
            raise
        try:
            self.recorder.record(trial, trial.number, outcome)
        finally:
            outcome.built = None
            keras.backend.clear_session()
            gc.collect()
        if outcome.fit.pruned:
            raise optuna.TrialPruned(f"pruned after epoch {outcome.fit.history[-1].epoch}")
        assert outcome.metrics is not None
        trial.set_user_attr("covid_sensitivity", outcome.metrics.covid_sensitivity)
        trial.set_user_attr("accuracy", outcome.metrics.accuracy)
        return outcome.fit.best_val_loss

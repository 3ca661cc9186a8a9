"""The Optuna objective: suggest a config, run the trial, store everything, return val_loss."""

from __future__ import annotations

import gc
import json
import math
import tempfile
import traceback
from dataclasses import asdict
from pathlib import Path

import keras
import optuna

from search._trial import TrialData, TrialOutcome, run_trial
from search.space import SearchSpace, TrialConfig
from search.store import RANKING, ArtifactRecord, EpochRow, ResultStore, TrialRow, config_row

__all__ = ["Objective", "failure_row"]

ENGINE = "optuna"


def _rank_key(values: tuple[float | None, ...]) -> tuple[float, ...]:
    return tuple(-math.inf if v is None else v for v in values)


class Objective:
    """Callable objective of a study; one instance per worker process."""

    def __init__(
        self,
        *,
        study_name: str,
        space: SearchSpace,
        data: TrialData,
        store: ResultStore,
        artifact_store: optuna.artifacts.FileSystemArtifactStore | optuna.artifacts.Boto3ArtifactStore,
        weights: str,
        seed: int,
        keep_models: int = 5,
    ) -> None:
        self.study_name, self.space, self.data, self.store = study_name, space, data, store
        self.artifact_store, self.weights, self.seed, self.keep_models = artifact_store, weights, seed, keep_models

    def __call__(self, trial: optuna.Trial) -> float:
        config = self.space.suggest(trial, weights=self.weights, seed=self.seed)
        trial.set_user_attr("config", asdict(config))

        def report(epoch: int, val_loss: float) -> bool:
            trial.report(val_loss, epoch)
            return bool(trial.should_prune())

        try:
            outcome = run_trial(config, self.data, report=report, keep_model=True)
        except BaseException as exc:  # record every failure (OOM, Ctrl-C, bugs), then let Optuna see it
            self._record_failure(trial, config, exc)
            raise
        try:
            artifacts = self._save_model(trial, outcome) if self._could_win(outcome) else []
            artifacts += self._save_overlays(trial, outcome)
            self.store.record(*self._rows(trial, outcome), artifacts)
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

    def _could_win(self, outcome: TrialOutcome) -> bool:
        """Save a model only if it enters the current top ``keep_models`` (bounded disk use)."""
        if outcome.metrics is None or self.keep_models <= 0:
            return False
        top = self.store.ranked(self.study_name, limit=self.keep_models)
        if len(top) < self.keep_models:
            return True
        focus = None if outcome.focus is None else outcome.focus.energy
        mine = _rank_key(tuple(focus if c == "lung_focus" else getattr(outcome.metrics, c, None) for c in RANKING))
        worst = _rank_key(tuple(getattr(top[-1], c) for c in RANKING))
        return mine >= worst

    def _save_model(self, trial: optuna.Trial, outcome: TrialOutcome) -> list[ArtifactRecord]:
        assert outcome.built is not None
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"trial-{trial.number}.keras"
            outcome.built.model.save(path)
            artifact_id = optuna.artifacts.upload_artifact(
                artifact_store=self.artifact_store, file_path=str(path), study_or_trial=trial
            )
            return [ArtifactRecord("model", artifact_id, path.name, path.stat().st_size)]

    def _save_overlays(self, trial: optuna.Trial, outcome: TrialOutcome) -> list[ArtifactRecord]:
        """A few Grad-CAM overlays per completed trial, for the leaderboard's trial page."""
        from PIL import Image

        records = []
        with tempfile.TemporaryDirectory() as tmp:
            for name, picture in outcome.overlays:
                path = Path(tmp) / name
                Image.fromarray(picture).save(path)
                artifact_id = optuna.artifacts.upload_artifact(
                    artifact_store=self.artifact_store, file_path=str(path), study_or_trial=trial, mimetype="image/png"
                )
                records.append(ArtifactRecord("gradcam", artifact_id, name, path.stat().st_size))
        return records

    def _rows(self, trial: optuna.Trial, outcome: TrialOutcome) -> tuple[TrialRow, list[EpochRow]]:
        row = config_row(self.study_name, trial.number, outcome.config, "PRUNED" if outcome.fit.pruned else "COMPLETE")
        m = outcome.metrics
        if m is not None:
            for name in ("loss", "accuracy", "balanced_accuracy", "covid_sensitivity", "covid_specificity"):
                setattr(row, name, getattr(m, name))
            for name in ("covid_ppv", "covid_npv", "covid_auc", "roc_auc"):
                setattr(row, name, getattr(m, name))
            row.class_names_json = json.dumps(m.class_names)
            row.per_class_json = json.dumps(m.per_class)
            row.confusion_json = json.dumps(m.confusion)
            row.covid_roc_json = None if m.covid_roc is None else json.dumps(m.covid_roc)
        if outcome.focus is not None:
            f = outcome.focus
            row.lung_focus, row.lung_focus_std, row.lung_focus_ratio = f.energy, f.energy_std, f.ratio
            row.pointing_game, row.lung_focus_n, row.lung_focus_blank = f.pointing, f.n, f.blank
            row.lung_mask_source = outcome.focus_source
        history = outcome.fit.history
        row.epochs_run = len(history)
        row.best_epoch = outcome.fit.best_epoch if history else None
        row.pruned_at_epoch = history[-1].epoch if outcome.fit.pruned and history else None
        row.wall_time_s = outcome.wall_time_s
        row.params, row.trainable_params = outcome.params, outcome.trainable_params
        row.dataset_fingerprint = self.data.manifest.fingerprint
        row.split_fingerprint = outcome.split_fingerprint
        epochs = [EpochRow(**asdict(r)) for r in history]
        return row, epochs

    def _record_failure(self, trial: optuna.Trial, config: TrialConfig, exc: BaseException) -> None:
        reason = "interrupted (Ctrl-C)" if isinstance(exc, KeyboardInterrupt) else _describe(exc)
        row = failure_row(self.study_name, trial.number, config, reason)
        row.dataset_fingerprint = self.data.manifest.fingerprint
        try:
            self.store.record(row)
        except Exception:  # the failure itself must reach Optuna even if the store is down
            traceback.print_exc()


def _describe(exc: BaseException) -> str:
    if type(exc).__name__ == "ResourceExhaustedError":
        return f"out of memory: {str(exc).splitlines()[0][:300]}"
    return f"{type(exc).__name__}: {str(exc)[:500]}"


def failure_row(study_name: str, number: int, config: TrialConfig, reason: str) -> TrialRow:
    row = config_row(study_name, number, config, "FAIL")
    row.error = reason
    return row

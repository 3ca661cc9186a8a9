"""Recording a finished trial: its results row, epochs, Grad-CAM overlays, misclassified images and
(maybe) its model.

Shared by both engines; only the engine name and what the artifacts attach to differ.
"""

from __future__ import annotations

import json
import tempfile
import traceback
from dataclasses import asdict
from pathlib import Path
from typing import Any

import optuna

from search._interrupt import interrupt_received
from search._trial import TrialOutcome
from search.artifacts import ArtifactStore
from search.metrics import TrialMetrics
from search.space import TrialConfig
from search.store import DEFAULT_RANKING, ArtifactRecord, EpochRow, Ranking, ResultStore, TrialRow, config_row

__all__ = ["TrialRecorder", "describe_failure", "failure_row", "metrics_to_row", "outcome_rows"]

BY_LOSS = Ranking(("loss",), min_specificity=0.0)
Target = optuna.Trial | optuna.Study  # what an artifact is attached to in Optuna's store


class TrialRecorder:
    """Writes one engine's trials of one study to the results store and the artifact store."""

    def __init__(
        self,
        *,
        study_name: str,
        store: ResultStore,
        artifact_store: ArtifactStore,
        dataset_fingerprint: str,
        engine: str,
        ranking: Ranking = DEFAULT_RANKING,
        keep_models: int = 5,
    ) -> None:
        self.study_name, self.store, self.artifact_store = study_name, store, artifact_store
        self.dataset_fingerprint, self.engine, self.keep_models = dataset_fingerprint, engine, keep_models
        self.ranking = ranking

    def record(self, target: Target, number: int, outcome: TrialOutcome) -> None:
        """Store a completed or pruned trial; artifacts are attached to ``target`` in Optuna's store."""
        prefix = "trial" if self.engine == "optuna" else f"{self.engine}-trial"
        artifacts = self._save_model(target, f"{prefix}-{number}.keras", outcome) if self._could_win(outcome) else []
        artifacts += self._save_overlays(target, outcome)
        mistakes, records = self._save_mistakes(target, outcome)
        artifacts += records
        row, epochs = outcome_rows(self.study_name, number, outcome, self.dataset_fingerprint, self.engine)
        row.mistakes_json = json.dumps(mistakes) if outcome.metrics is not None else None
        predictions = [outcome.predictions] if outcome.predictions is not None else []
        self.store.record(row, epochs, artifacts, predictions)

    def record_failure(self, number: int, config: TrialConfig, exc: BaseException) -> None:
        row = failure_row(self.study_name, number, config, describe_failure(exc), self.engine)
        row.dataset_fingerprint = self.dataset_fingerprint
        try:
            self.store.record(row)
        except Exception:  # the failure itself must reach the engine even if the store is down
            traceback.print_exc()

    def _could_win(self, outcome: TrialOutcome) -> bool:
        """Save a model only if it enters the current top ``keep_models`` under the study's
        ranking or by validation loss (bounded disk use).

        The second list keeps the models an ensemble is made of: the ranked figure is a
        sensitivity on a hundred-odd images, where ties and luck are common, while the
        validation loss is what ensemble selection minimises, and it often prefers another
        backbone's model that the ranking put just below the top.
        """
        if outcome.metrics is None or self.keep_models <= 0:
            return False
        mine, _ = outcome_rows(self.study_name, -1, outcome, self.dataset_fingerprint, self.engine)
        for ranking in (self.ranking, BY_LOSS):
            top = self.store.ranked(self.study_name, limit=self.keep_models, ranking=ranking)
            if len(top) < self.keep_models or ranking.key(mine) <= ranking.key(top[-1]):
                return True
        return False

    def _save_model(self, target: Target, name: str, outcome: TrialOutcome) -> list[ArtifactRecord]:
        if outcome.fold_models:  # a cross-validated trial: its fold models, saved as they were trained
            return [
                self._upload(target, path, name.replace(".keras", f"-fold-{k}.keras"))
                for k, path in enumerate(outcome.fold_models)
            ]
        assert outcome.built is not None
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / name
            outcome.built.model.save(path)
            artifact_id = optuna.artifacts.upload_artifact(
                artifact_store=self.artifact_store, file_path=str(path), study_or_trial=target
            )
            return [ArtifactRecord("model", artifact_id, path.name, path.stat().st_size)]

    def _upload(self, target: Target, path: Path, name: str) -> ArtifactRecord:
        artifact_id = optuna.artifacts.upload_artifact(
            artifact_store=self.artifact_store, file_path=str(path), study_or_trial=target
        )
        return ArtifactRecord("model", artifact_id, name, path.stat().st_size)

    def _save_overlays(self, target: Target, outcome: TrialOutcome) -> list[ArtifactRecord]:
        """A few Grad-CAM overlays per completed trial, for the leaderboard's trial page."""
        from PIL import Image

        records = []
        with tempfile.TemporaryDirectory() as tmp:
            for name, picture in outcome.overlays:
                path = Path(tmp) / name
                Image.fromarray(picture).save(path)
                artifact_id = optuna.artifacts.upload_artifact(
                    artifact_store=self.artifact_store, file_path=str(path), study_or_trial=target, mimetype="image/png"
                )
                records.append(ArtifactRecord("gradcam", artifact_id, name, path.stat().st_size))
        return records

    def _save_mistakes(
        self, target: Target, outcome: TrialOutcome
    ) -> tuple[list[dict[str, Any]], list[ArtifactRecord]]:
        """The trial's misclassified validation images: their overlays as ``"mistake"`` artifacts, and
        the ``mistakes_json`` items that name them (``artifact_id`` filled in)."""
        from PIL import Image

        items, records = [], []
        with tempfile.TemporaryDirectory() as tmp:
            for name, item, picture in outcome.mistakes:
                path = Path(tmp) / name
                Image.fromarray(picture).save(path)
                artifact_id = optuna.artifacts.upload_artifact(
                    artifact_store=self.artifact_store, file_path=str(path), study_or_trial=target, mimetype="image/png"
                )
                records.append(ArtifactRecord("mistake", artifact_id, name, path.stat().st_size))
                items.append({**item, "artifact_id": artifact_id})
        return items, records


def describe_failure(exc: BaseException) -> str:
    if isinstance(exc, KeyboardInterrupt) or interrupt_received():  # Ctrl-C can surface as another error
        return "interrupted (Ctrl-C)"
    if type(exc).__name__ == "ResourceExhaustedError":
        return f"out of memory: {str(exc).splitlines()[0][:300]}"
    return f"{type(exc).__name__}: {str(exc)[:500]}"


def outcome_rows(
    study_name: str, number: int, outcome: TrialOutcome, dataset_fingerprint: str, engine: str = "optuna"
) -> tuple[TrialRow, list[EpochRow]]:
    """The results row and epoch rows of one finished (completed or pruned) trial."""
    state = "PRUNED" if outcome.fit.pruned else "COMPLETE"
    row = config_row(study_name, number, outcome.config, state, engine)
    if outcome.metrics is not None:
        metrics_to_row(row, outcome.metrics)
    if outcome.focus is not None:
        f = outcome.focus
        row.lung_focus, row.lung_focus_std, row.lung_focus_ratio = f.energy, f.energy_std, f.ratio
        row.pointing_game, row.lung_focus_n, row.lung_focus_blank = f.pointing, f.n, f.blank
        row.lung_mask_source = outcome.focus_source
    row.hidden_lungs_auc = outcome.hidden_lungs_auc
    history = outcome.fit.history
    row.epochs_run = len(history)
    row.best_epoch = outcome.fit.best_epoch if history else None
    row.pruned_at_epoch = history[-1].epoch if outcome.fit.pruned and history else None
    row.wall_time_s = outcome.wall_time_s
    row.params, row.trainable_params = outcome.params, outcome.trainable_params
    row.dataset_fingerprint = dataset_fingerprint
    row.split_fingerprint = outcome.split_fingerprint
    row.folds = outcome.config.folds
    row.fold_spread_json = None if outcome.fold_spread is None else json.dumps(outcome.fold_spread)
    return row, [EpochRow(**asdict(r)) for r in history]


def metrics_to_row(row: TrialRow, m: TrialMetrics) -> TrialRow:
    """Copy every figure of one split's metrics into a results row (validation, test or external)."""
    for name in ("loss", "accuracy", "balanced_accuracy", "covid_sensitivity", "covid_specificity"):
        setattr(row, name, getattr(m, name))
    for name in ("covid_ppv", "covid_npv", "covid_auc", "roc_auc"):
        setattr(row, name, getattr(m, name))
    row.covid_sensitivity_low, row.covid_sensitivity_high = m.covid_sensitivity_ci or (None, None)
    row.covid_specificity_low, row.covid_specificity_high = m.covid_specificity_ci or (None, None)
    op = m.operating
    if op is not None:
        row.op_target = f"{op.target.kind} {op.target.value:g}"
        row.covid_threshold = op.threshold
        row.op_sensitivity, row.op_specificity = op.sensitivity, op.specificity
        row.op_sensitivity_low, row.op_sensitivity_high = op.sensitivity_ci or (None, None)
        row.op_specificity_low, row.op_specificity_high = op.specificity_ci or (None, None)
    row.class_names_json = json.dumps(m.class_names)
    row.per_class_json = json.dumps(m.per_class)
    row.confusion_json = json.dumps(m.confusion)
    row.covid_roc_json = None if m.covid_roc is None else json.dumps(m.covid_roc)
    return row


def failure_row(study_name: str, number: int, config: TrialConfig, reason: str, engine: str = "optuna") -> TrialRow:
    row = config_row(study_name, number, config, "FAIL", engine)
    row.error = reason
    return row

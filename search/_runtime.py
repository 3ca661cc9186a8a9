"""What every engine's worker does the same way: open the study, and run and record one trial.

The Optuna worker (:mod:`search.worker`) and the KerasTuner engine (:mod:`search.kerastuner`)
differ only in who proposes the configuration and what a trial's artifacts attach to.
"""

from __future__ import annotations

import gc
from dataclasses import dataclass
from pathlib import Path

import keras
import optuna

from search._accel import configure_precision
from search._recording import Target, TrialRecorder
from search._records import study_manifest
from search._study import StudyInfo, load_study, make_storage
from search._trial import TrialData, TrialOutcome, run_trial
from search.artifacts import artifact_store
from search.space import TrialConfig
from search.store import ResultStore
from search.train import Reporter

__all__ = ["StudyRuntime", "open_runtime", "run_and_record"]


@dataclass
class StudyRuntime:
    """One worker's handle on a study: Optuna's study, what it was created with, the results
    store and the data its trials train on."""

    study: optuna.Study
    info: StudyInfo
    store: ResultStore
    data: TrialData

    def recorder(self, engine: str, keep_models: int) -> TrialRecorder:
        return TrialRecorder(
            study_name=self.study.study_name,
            store=self.store,
            artifact_store=artifact_store(self.info.artifacts),
            dataset_fingerprint=self.data.manifest.fingerprint,
            engine=engine,
            ranking=self.info.ranking,
            keep_models=keep_models,
        )


def open_runtime(storage: str, study_name: str, *, data: str | None = None, worker_index: int = 0) -> StudyRuntime:
    """Join the study: precision set, schema checked, the study's data read (from the cache
    launch wrote, else scanned and checked against the study's fingerprint)."""
    configure_precision()
    study, info = load_study(make_storage(storage), study_name, worker_index)
    store = ResultStore(storage)
    store.check_schema()
    manifest = study_manifest(data or info.data_path, info.cache_dir, info.dataset_fingerprint)
    trial_data = TrialData(
        manifest,
        cache_dir=Path(info.cache_dir),
        split_seed=info.split_seed,
        lung_model=Path(info.lung_model) if info.lung_model else None,
    )
    return StudyRuntime(study, info, store, trial_data)


def run_and_record(
    config: TrialConfig,
    data: TrialData,
    recorder: TrialRecorder,
    target: Target,
    number: int,
    report: Reporter | None = None,
) -> TrialOutcome:
    """Train and measure one configuration, then store it; a failure is recorded and re-raised.

    The model is released and Keras' session cleared afterwards, as KerasTuner does between
    trials, so a long-lived worker does not grow.
    """
    try:
        outcome = run_trial(config, data, report=report, keep_model=True)
    except BaseException as exc:  # record every failure (OOM, Ctrl-C, bugs), then let the engine see it
        recorder.record_failure(number, config, exc)
        raise
    try:
        recorder.record(target, number, outcome)
    finally:
        outcome.built = None
        keras.backend.clear_session()
        gc.collect()
    return outcome

"""Finding a study's trials and their stored models (shared by export, evaluate and predict)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import optuna

from cxrdata import Manifest, scan
from search._errors import SearchError
from search._study import StudyInfo, check_study_exists, make_storage
from search.artifacts import download_to
from search.logging import get_logger
from search.store import DEFAULT_RANKING, Ranking, ResultStore, TrialRow, meets_floor

__all__ = ["download_model", "download_models", "find_trial", "study_info", "study_manifest"]

_logger = get_logger(__name__)


def study_info(storage: str, study: str) -> StudyInfo:
    check_study_exists(make_storage(storage), study)
    return StudyInfo.from_attrs(optuna.load_study(study_name=study, storage=storage).user_attrs)


def find_trial(
    store: ResultStore, study: str, trial: int | None, engine: str = "optuna", ranking: Ranking = DEFAULT_RANKING
) -> TrialRow:
    """The given trial's validation row, or the top-ranked completed one."""
    if trial is None:
        top = store.ranked(study, limit=1, ranking=ranking)
        if not top:
            raise SearchError(f"The study must have a completed trial to export, but {study!r} has none yet.")
        specificity = top[0].covid_specificity
        if not meets_floor(specificity, ranking.min_specificity):
            has = "no measured specificity" if specificity is None else f"{specificity:.2f}"
            _logger.warning(
                f"no completed trial of {study!r} reaches COVID specificity {ranking.min_specificity:.2f}; "
                f"the top-ranked trial {top[0].trial_number} has {has} (it may call most X-rays COVID)."
            )
        return top[0]
    rows = {r.trial_number: r for r in store.trials(study, engine=engine)}
    if trial not in rows:
        raise SearchError(f"`--trial` must be a trial of study {study!r} with stored results, but got {trial}.")
    if rows[trial].state != "COMPLETE":
        raise SearchError(f"`--trial` must be a completed trial, but trial {trial} is {rows[trial].state}.")
    return rows[trial]


def download_models(row: TrialRow, info: StudyInfo, folder: Path | None = None) -> list[Path]:
    """The trial's saved ``.keras`` files (one; a cross-validated trial has one per fold), fetched
    from the study's artifact store."""
    models = sorted((a for a in row.artifacts if a.kind == "model"), key=lambda a: a.filename)
    if not models:
        raise SearchError(
            f"Trial {row.trial_number} must have a saved model, but none was kept (models are saved for trials that "
            f"entered the top at the time; see --keep-models)."
        )
    folder = folder or Path(tempfile.mkdtemp(prefix="cxr-model-"))
    paths = []
    for model in models:
        try:
            paths.append(download_to(info.artifacts, model.artifact_id, folder, model.filename))
        except SearchError:
            raise
        except Exception as exc:  # boto3 and the file system raise many types
            raise SearchError(
                f"The model of trial {row.trial_number} must be readable in the artifact store {info.artifacts}, "
                f"but it is not ({exc})."
            ) from None
    return paths


def download_model(row: TrialRow, info: StudyInfo, folder: Path | None = None) -> Path:
    """The trial's saved ``.keras`` file (the first fold's, for a cross-validated trial)."""
    return download_models(row, info, folder)[0]


def study_manifest(data_path: str, cache_dir: str, fingerprint: str) -> Manifest:
    """The study's manifest: from the cache launch wrote, else a fresh scan that must match."""
    cached = Path(cache_dir) / f"manifest-{fingerprint}.json"
    if cached.is_file():
        manifest = Manifest.from_json(cached.read_text())
        if Path(data_path).resolve() == manifest.root.resolve():
            return manifest
    manifest = scan(data_path)
    if manifest.fingerprint != fingerprint:
        raise SearchError(
            f"A worker must see the study's dataset, but {data_path} has fingerprint {manifest.fingerprint} "
            f"and the study was created on {fingerprint}."
        )
    return manifest

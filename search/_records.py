"""Finding a study's trials and their stored models (shared by export, evaluate and predict)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import optuna

from cxrdata import Manifest, scan
from search._errors import SearchError
from search._study import StudyInfo, check_study_exists, make_storage
from search.artifacts import download_to
from search.logging import get_logger
from search.store import (
    DEFAULT_RANKING,
    Ranking,
    ResultStore,
    Review,
    TrialRow,
    describe_shortcut,
    meets_floor,
    trial_label,
)

__all__ = [
    "download_model",
    "download_models",
    "find_trial",
    "load_models",
    "shortcut_verdicts",
    "study_info",
    "study_manifest",
    "warn_if_shortcut",
    "without_shortcuts",
]

_logger = get_logger(__name__)


def study_info(storage: str, study: str) -> StudyInfo:
    check_study_exists(make_storage(storage), study)
    return StudyInfo.from_attrs(optuna.load_study(study_name=study, storage=storage).user_attrs)


def find_trial(
    store: ResultStore, study: str, trial: int | None, engine: str = "optuna", ranking: Ranking = DEFAULT_RANKING
) -> TrialRow:
    """The given trial's validation row, or the top-ranked completed one.

    The top-ranked one is never a trial whose latest review says it reads a shortcut: each such
    trial ranked above the one chosen is skipped with one line saying who marked it, when and
    why. A trial given by number is used even so, with a warning.
    """
    if trial is None:
        shortcuts = shortcut_verdicts(store, study)
        top = store.ranked(study, limit=len(shortcuts) + 1, ranking=ranking)
        if not top:
            raise SearchError(f"The study must have a completed trial to export, but {study!r} has none yet.")
        chosen = next((r for r in top if (r.engine, r.trial_number) not in shortcuts), None)
        if chosen is None:
            raise SearchError(
                f"The study must have a completed trial that no reviewer marked as reading a shortcut, but all "
                f"{len(top)} completed trials of {study!r} are marked; name one with --trial to use it anyway."
            )
        without_shortcuts(top[: top.index(chosen)], shortcuts)
        specificity = chosen.covid_specificity
        if not meets_floor(specificity, ranking.min_specificity):
            has = "no measured specificity" if specificity is None else f"{specificity:.2f}"
            _logger.warning(
                f"no completed trial of {study!r} reaches COVID specificity {ranking.min_specificity:.2f}; "
                f"the top-ranked trial {chosen.trial_number} has {has} (it may call most X-rays COVID)."
            )
        _warn_if_infeasible(study, chosen, ranking)
        return chosen
    rows = {r.trial_number: r for r in store.trials(study, engine=engine)}
    if trial not in rows:
        raise SearchError(f"`--trial` must be a trial of study {study!r} with stored results, but got {trial}.")
    if rows[trial].state != "COMPLETE":
        raise SearchError(f"`--trial` must be a completed trial, but trial {trial} is {rows[trial].state}.")
    warn_if_shortcut(rows[trial], shortcut_verdicts(store, study))
    return rows[trial]


def _warn_if_infeasible(study: str, chosen: TrialRow, ranking: Ranking) -> None:
    """Feasible trials rank first, so an infeasible top means that no trial meets the study's constraints."""
    if ranking.feasible(chosen):
        return
    ratio, auc = chosen.lung_focus_ratio, chosen.hidden_lungs_auc
    has = []
    if ranking.min_lung_focus_ratio is not None:
        has.append("no measured lung focus" if ratio is None else f"lung focus ratio {ratio:.2f}")
    if ranking.max_hidden_lungs_auc is not None:
        has.append("no measured AUC with the lungs hidden" if auc is None else f"AUC with the lungs hidden {auc:.2f}")
    _logger.warning(
        f"no completed trial of {study!r} meets its constraint {ranking.constraint_text()}; "
        f"the top-ranked trial {chosen.trial_number} has {' and '.join(has)}."
    )


def shortcut_verdicts(store: ResultStore, study: str) -> dict[tuple[str, int], Review]:
    """The study's trials whose latest verdict is ``shortcut``, by ``(engine, trial_number)``."""
    return {key: review for key, review in store.latest_verdicts(study).items() if review.verdict == "shortcut"}


def without_shortcuts(rows: list[TrialRow], shortcuts: dict[tuple[str, int], Review]) -> list[TrialRow]:
    """``rows`` less the trials marked as reading a shortcut, each skipped one said in one line:
    ``trial N skipped: REVIEWER marked it as reading a shortcut (DATE): NOTE``."""
    kept = []
    for row in rows:
        review = shortcuts.get((row.engine, row.trial_number))
        if review is None:
            kept.append(row)
        else:
            _logger.info(f"{trial_label(row.engine, row.trial_number)} skipped: {describe_shortcut(review)}")
    return kept


def warn_if_shortcut(row: TrialRow, shortcuts: dict[tuple[str, int], Review]) -> None:
    """A warning when a trial named explicitly was marked as reading a shortcut (it is used all the same)."""
    review = shortcuts.get((row.engine, row.trial_number))
    if review is not None:
        _logger.warning(
            f"{trial_label(row.engine, row.trial_number)} is used as named, but {describe_shortcut(review)}"
        )


def download_models(row: TrialRow, info: StudyInfo, folder: Path | None = None) -> list[Path]:
    """The trial's saved ``.keras`` files (one; a cross-validated trial has one per fold), fetched
    from the study's artifact store into ``folder`` (without one, a new temporary folder that
    the caller removes; :func:`load_models` leaves nothing behind)."""
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


def load_models(row: TrialRow, info: StudyInfo) -> list[Any]:
    """The trial's stored Keras models (one per fold for a cross-validated trial), loaded in
    safe mode; the downloaded files are removed once read (each is tens of megabytes, and every
    evaluation or export would otherwise leave them in the temporary folder)."""
    import keras

    with tempfile.TemporaryDirectory(prefix="cxr-model-") as folder:
        return [keras.models.load_model(path, safe_mode=True) for path in download_models(row, info, Path(folder))]


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

"""What an export packages: one trial, or a greedy ensemble of the top trials, and its validation figures."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from search._errors import SearchError
from search.ensemble import Selection, select_ensemble
from search.evaluate import StudyData
from search.export._card import row_summary, summary
from search.logging import get_logger
from search.metrics import COVID_LABEL, OperatingTarget, compute_metrics
from search.space import TrialConfig
from search.store import Predictions, Ranking, ResultStore, TrialRow

__all__ = ["DEFAULT_ENSEMBLE", "Choice", "Member", "check_choice_args", "choose", "load_members", "validation_figures"]

_logger = get_logger(__name__)

# Candidates: the top trials with a saved model. Launch keeps the models of the top 5 by the
# ranking and the top 5 by validation loss, so about 5 to 10 are there after a search.
DEFAULT_ENSEMBLE = 10


@dataclass
class Member:
    row: TrialRow
    config: TrialConfig
    weight: float
    predictions: Predictions | None


@dataclass
class Choice:
    members: list[Member]
    selection: Selection | None  # None for a single trial asked for by number
    pool: list[int]  # trial numbers the selection chose from


def check_choice_args(trial: int | None, ensemble: int | None, members: Sequence[int] | None) -> None:
    if ensemble is not None and ensemble < 1:
        raise SearchError(f"`--ensemble >= 1` must hold (1 exports the top-ranked trial alone), but got {ensemble}.")
    given = [
        name
        for name, value in (("--trial", trial), ("--ensemble", ensemble), ("--members", members))
        if value is not None
    ]
    if len(given) > 1:
        raise SearchError(f"Give at most one of --trial, --ensemble and --members, but got {' and '.join(given)}.")
    if members is not None and len(set(members)) != len(members):
        raise SearchError(f"`--members` must name distinct trials, but got {list(members)}.")


def _eligible(store: ResultStore, study: str, ranking: Ranking) -> list[TrialRow]:
    """Completed trials with a stored model, best-ranked first."""
    return [r for r in store.ranked(study, ranking=ranking) if any(a.kind == "model" for a in r.artifacts)]


def _check_compatible(rows: Sequence[TrialRow]) -> None:
    kinds = {(r.scheme, r.class_names_json, r.split_fingerprint) for r in rows}
    if len(kinds) > 1:
        named = ", ".join(f"{r.trial_number} ({r.scheme})" for r in rows)
        raise SearchError(
            "An ensemble's members must share one class scheme, class order and split, but trials "
            f"{named} do not; name compatible trials with --members."
        )
    regions = {_input_of(r) for r in rows}
    if len(regions) > 1:
        named = ", ".join(f"{r.trial_number} ({_input_of(r)[0]})" for r in rows)
        raise SearchError(
            "An ensemble's members must see the same input region and border crop (one input is prepared "
            f"for all of them), but trials {named} do not; name compatible trials with --members."
        )


def _input_of(row: TrialRow) -> tuple[str, float]:
    config = TrialConfig.from_json(row.config_json)
    return config.input_region, config.crop


def _same_input(rows: list[TrialRow]) -> list[TrialRow]:
    """The rows that see what the first (best) one sees: the default pool follows the leader."""
    return [r for r in rows if _input_of(r) == _input_of(rows[0])] if rows else rows


def _member(row: TrialRow, weight: float, predictions: Predictions | None) -> Member:
    return Member(row, TrialConfig.from_json(row.config_json), weight, predictions)


def _pool(
    sd: StudyData, study: str, ensemble: int | None, members: Sequence[int] | None
) -> tuple[list[TrialRow], dict[int, Predictions]]:
    """The candidates: named by ``members``, the top ``ensemble``, or by default the top
    ``DEFAULT_ENSEMBLE`` that have stored predictions (older trials have none).

    Trials whose latest review says they read a shortcut are never chosen by rank (one line per
    skipped trial says who marked it, when and why); named by ``members`` they are used, with a
    warning.
    """
    from search._records import shortcut_verdicts, warn_if_shortcut, without_shortcuts

    eligible = _eligible(sd.store, study, sd.info.ranking)
    if not eligible:
        raise SearchError(f"The study must have a completed trial with a saved model, but {study!r} has none yet.")
    stored = sd.store.predictions(study, eligible)
    shortcuts = shortcut_verdicts(sd.store, study)
    if members is not None:
        by_number = {r.trial_number: r for r in eligible}
        missing = [m for m in members if m not in by_number]
        if missing:
            raise SearchError(
                f"`--members` must name completed trials of {study!r} with a saved model, but {missing} are not "
                f"among them ({sorted(by_number)})."
            )
        for m in members:
            warn_if_shortcut(by_number[m], shortcuts)
        return [by_number[m] for m in members], stored
    marked = len(eligible)
    eligible = without_shortcuts(eligible, shortcuts)
    if not eligible:
        raise SearchError(
            f"The study must have a completed trial with a saved model that no reviewer marked as reading a "
            f"shortcut, but all {marked} of {study!r} are marked; name them with --trial or --members to use them "
            "anyway."
        )
    if ensemble is None:
        eligible = _feasible_first(eligible, sd.info.ranking, study)
        with_predictions = [r for r in eligible if r.trial_number in stored]
        return _same_input(with_predictions or eligible)[:DEFAULT_ENSEMBLE], stored
    eligible = _same_input(eligible)
    if ensemble > len(eligible):
        raise SearchError(
            f"`--ensemble` must be at most the {len(eligible)} completed trial(s) of {study!r} with a saved "
            f"model and the leader's input region, but got {ensemble}."
        )
    return eligible[:ensemble], stored


def _feasible_first(eligible: list[TrialRow], ranking: Ranking, study: str) -> list[TrialRow]:
    """The default pool under a study's constraints: only trials that meet them, when any with a
    saved model does (the ensemble selection would otherwise pick infeasible members by loss)."""
    if not ranking.constrained:
        return eligible
    feasible = [r for r in eligible if ranking.feasible(r)]
    if not feasible:
        _logger.warning(
            f"no completed trial of {study!r} with a saved model meets {ranking.constraint_text()}; "
            "the ensemble is chosen among infeasible trials."
        )
        return eligible
    return feasible


def _check_measured_alike(pool: Sequence[TrialRow], stored: dict[int, Predictions]) -> None:
    without = [r.trial_number for r in pool if r.trial_number not in stored]
    if without:
        raise SearchError(
            f"Every ensemble candidate must have stored validation predictions, but trials {without} have none "
            "(they were recorded by an older version); export one of them with --trial."
        )
    first = stored[pool[0].trial_number]
    for r in pool[1:]:
        other = stored[r.trial_number]
        if not (np.array_equal(other.indices, first.indices) and np.array_equal(other.labels, first.labels)):
            raise SearchError(
                f"Ensemble candidates must be measured on the same validation images, but trials "
                f"{pool[0].trial_number} and {r.trial_number} were not."
            )


def choose(sd: StudyData, study: str, trial: int | None, ensemble: int | None, members: Sequence[int] | None) -> Choice:
    """What to export: one trial, or the greedy ensemble over a pool of the top trials."""
    from search._records import find_trial

    if trial is not None:
        row = find_trial(sd.store, study, trial)
        return Choice([_member(row, 1.0, sd.store.predictions(study, [row]).get(trial))], None, [trial])
    pool, stored = _pool(sd, study, ensemble, members)
    numbers = [r.trial_number for r in pool]
    if len(pool) == 1:
        return Choice([_member(pool[0], 1.0, stored.get(numbers[0]))], None, numbers)
    _check_compatible(pool)
    _check_measured_alike(pool, stored)
    selection = select_ensemble([stored[n].proba for n in numbers], stored[numbers[0]].labels)
    chosen = [_member(pool[i], selection.weights[i], stored[numbers[i]]) for i in selection.chosen]
    return Choice(chosen, selection, numbers)


def validation_figures(
    choice: Choice, classes: Sequence[str], target: OperatingTarget, threshold: float | None
) -> tuple[dict[str, Any], float | None]:
    """The exported model's validation figures and its COVID threshold (chosen here unless given).

    The ensemble's validation probabilities are its members' stored ones, weighted: exactly
    what the averaged model outputs on those images.
    """
    from search.metrics import choose_threshold

    stored = [m.predictions for m in choice.members]
    if any(p is None for p in stored):  # a single trial recorded before predictions were stored
        row = choice.members[0].row
        return row_summary(row), threshold if threshold is not None else row.covid_threshold
    first = stored[0]
    assert first is not None
    proba = np.sum([m.weight * p.proba for m, p in zip(choice.members, stored, strict=True) if p is not None], axis=0)
    labels = first.labels
    if threshold is None:
        threshold = choose_threshold(labels == COVID_LABEL, proba[:, COVID_LABEL], target)
    metrics = compute_metrics(labels, proba, classes, split=first.kind, target=target, threshold=threshold)
    return summary(metrics), threshold


def load_members(choice: Choice, sd: StudyData, refit: bool) -> list[list[Any]]:
    """Each member's models: its one model, or its fold models (a cross-validated trial), or the
    one model a refit on train+validation trains."""
    from search._records import load_models
    from search._trial import refit_trial

    models: list[list[Any]] = []
    for m in choice.members:
        if refit:
            epochs = (m.row.best_epoch if m.row.best_epoch is not None else m.config.max_epochs - 1) + 1
            _logger.info(f"Refitting trial {m.row.trial_number} on train+validation for {epochs} epoch(s) ...")
            models.append([refit_trial(replace(m.config, folds=1), sd.trial_data, epochs)])
        else:
            models.append(load_models(m.row, sd.info))
    return models

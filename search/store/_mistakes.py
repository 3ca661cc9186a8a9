"""What a trial gets wrong: its decision at its own operating point, the misclassified images it
shows, and the JSON they are stored as (``cxr_trials.mistakes_json``).

Pure NumPy, no TensorFlow: the trial runner picks the images and computes their Grad-CAM
overlays; the leaderboard counts the confusion again from the stored predictions with the
same rule.

The decision is the one the exported model makes: COVID when its probability is at least the
trial's COVID threshold, otherwise the likeliest other class (argmax when the trial has no
threshold). Misclassified images are shown in this order, at most :data:`MISTAKES`:

1. ``missed_covid``: COVID images below the threshold, most confident misses (lowest COVID
   probability) first;
2. ``false_covid``: other images at or above the threshold, highest COVID probability first;
3. ``other``: confusions between the other classes, most confident (highest probability of
   the wrong class) first.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "MISTAKES",
    "MISTAKE_KINDS",
    "MistakeCounts",
    "count_mistakes",
    "decide",
    "mistake_candidates",
    "parse_mistakes",
    "pick_mistakes",
]

MISTAKES = 8  # misclassified images (and Grad-CAM overlays) kept per trial
MISTAKE_KINDS = ("missed_covid", "false_covid", "other")
_COVID = 0  # COVID is label 0 in every class scheme (cxrdata)
_KEYS = {
    "entry": int,
    "path": str,
    "label": str,
    "predicted": str,
    "covid_probability": float,
    "probabilities": dict,
    "artifact_id": str,
    "kind": str,
}


def decide(proba: np.ndarray, threshold: float | None) -> np.ndarray:
    """Predicted labels: COVID when ``proba[:, 0] >= threshold``, else the likeliest other class;
    the argmax when ``threshold`` is None (no operating point could be chosen)."""
    proba = np.asarray(proba, dtype=np.float64)
    if threshold is None or proba.shape[1] < 2:
        return np.asarray(proba.argmax(axis=1), dtype=np.int64)
    others = proba.copy()
    others[:, _COVID] = -np.inf
    predicted = others.argmax(axis=1)
    predicted[proba[:, _COVID] >= threshold] = _COVID
    return np.asarray(predicted, dtype=np.int64)


def _order(values: np.ndarray, positions: np.ndarray, *, descending: bool) -> np.ndarray:
    keys = -values[positions] if descending else values[positions]
    return positions[np.argsort(keys, kind="stable")]


def pick_mistakes(
    labels: np.ndarray, proba: np.ndarray, threshold: float | None, limit: int = MISTAKES
) -> list[tuple[int, str]]:
    """Up to ``limit`` misclassified positions (into ``labels``/``proba``) with their kind, in the
    order of the module's description (ties keep the positions' order)."""
    labels = np.asarray(labels, dtype=np.int64)
    proba = np.asarray(proba, dtype=np.float64)
    predicted = decide(proba, threshold)
    covid = proba[:, _COVID]
    wrong = predicted != labels
    confidence = proba[np.arange(len(labels)), predicted]
    groups = (
        ("missed_covid", _order(covid, np.flatnonzero(wrong & (labels == _COVID)), descending=False)),
        ("false_covid", _order(covid, np.flatnonzero(wrong & (predicted == _COVID)), descending=True)),
        (
            "other",
            _order(confidence, np.flatnonzero(wrong & (labels != _COVID) & (predicted != _COVID)), descending=True),
        ),
    )
    return [(int(p), kind) for kind, positions in groups for p in positions][:limit]


def mistake_candidates(labels: np.ndarray, proba: np.ndarray, limit: int = MISTAKES) -> np.ndarray:
    """The positions whose overlays :func:`pick_mistakes` may need, whatever threshold is chosen later.

    A cross-validated trial predicts each fold's images with that fold's model, but chooses its
    threshold only on all folds' predictions together, when the fold models are gone. Each fold
    therefore keeps Grad-CAM for at most ``3 * limit`` of its images: its ``limit`` COVID images
    of lowest COVID probability (missed COVID is a prefix of that order at any threshold), its
    ``limit`` other images of highest COVID probability (so is false COVID), and the ``limit``
    most confident confusions between other classes among the rest (those are needed only when
    fewer than ``limit`` images are false COVID, which then all lie in the previous group).
    Picking among these with any threshold gives what picking among all would.
    """
    labels = np.asarray(labels, dtype=np.int64)
    proba = np.asarray(proba, dtype=np.float64)
    covid = proba[:, _COVID]
    lowest = _order(covid, np.flatnonzero(labels == _COVID), descending=False)[:limit]
    highest = _order(covid, np.flatnonzero(labels != _COVID), descending=True)[:limit]
    others = decide(proba, 2.0)  # the likeliest other class, whatever the threshold
    confidence = proba[np.arange(len(labels)), others]
    confused = np.flatnonzero((labels != _COVID) & (others != labels))
    confused = _order(confidence, np.setdiff1d(confused, highest), descending=True)[:limit]
    return np.unique(np.concatenate([lowest, highest, confused]).astype(np.int64))


@dataclass(frozen=True)
class MistakeCounts:
    """The confusion of one trial's stored predictions at its threshold (rows: true class, columns: predicted)."""

    n: int
    misclassified: int
    missed_covid: int
    false_covid: int
    other: int
    confusion: list[list[int]]


def count_mistakes(labels: np.ndarray, proba: np.ndarray, threshold: float | None) -> MistakeCounts:
    labels = np.asarray(labels, dtype=np.int64)
    proba = np.asarray(proba, dtype=np.float64)
    k = proba.shape[1]
    predicted = decide(proba, threshold)
    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (labels, predicted), 1)
    wrong = predicted != labels
    return MistakeCounts(
        n=len(labels),
        misclassified=int(wrong.sum()),
        missed_covid=int((wrong & (labels == _COVID)).sum()),
        false_covid=int((wrong & (predicted == _COVID)).sum()),
        other=int((wrong & (labels != _COVID) & (predicted != _COVID)).sum()),
        confusion=confusion.tolist(),
    )


def parse_mistakes(text: str | None) -> tuple[list[dict[str, Any]], list[str]]:
    """The stored mistakes that are well formed, and one sentence per problem (a corrupt column
    is reported, not raised: the database may have been written by anyone)."""
    if not text:
        return [], []
    try:
        value = json.loads(text)
    except ValueError as exc:
        return [], [f"The column mistakes_json of this trial must hold JSON, but it does not ({exc})."]
    if not isinstance(value, list):
        kind = type(value).__name__
        return [], [f"The column mistakes_json of this trial must hold a JSON list, but holds a {kind}."]
    good, problems = [], []
    for i, item in enumerate(value):
        bad = _malformed(item)
        if bad is None:
            good.append(item)
        else:
            problems.append(f"Mistake {i} of this trial must be {bad}, but it is not; it is left out.")
    return good, problems


def _malformed(item: Any) -> str | None:
    if not isinstance(item, dict) or set(item) != set(_KEYS):
        return f"an object with exactly the keys {', '.join(_KEYS)}"
    for key, kind in _KEYS.items():
        value = item[key]
        wanted = (int, float) if kind is float else (kind,)
        if isinstance(value, bool) or not isinstance(value, wanted):
            return f"an object whose {key} is a {kind.__name__}"
    if item["kind"] not in MISTAKE_KINDS:
        return f"an object whose kind is one of {', '.join(MISTAKE_KINDS)}"
    if not all(isinstance(k, str) and isinstance(p, int | float) for k, p in item["probabilities"].items()):
        return "an object whose probabilities map class names to numbers"
    return None

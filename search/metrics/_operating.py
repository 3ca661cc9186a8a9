"""Operating points: a COVID threshold chosen for a target, and intervals that say how sure a figure is.

A bare argmax decides at whatever threshold the softmax happens to put between classes. A
screening team decides at a target instead ("at most 5% of non-COVID X-rays flagged"), so a
trial's COVID threshold is chosen on its validation probabilities for that target and the
figures at that threshold are what the search ranks on. Every sensitivity and specificity
carries a 95% Wilson interval: 120 validation COVID images move a sensitivity by several points
between equally good models, and the interval shows it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = [
    "DEFAULT_TARGET",
    "OperatingPoint",
    "OperatingTarget",
    "at_threshold",
    "choose_threshold",
    "operating_point",
    "wilson_interval",
]

_Z95 = 1.959963984540054  # the 97.5th percentile of the standard normal


@dataclass(frozen=True)
class OperatingTarget:
    """What the COVID threshold is chosen for: a specificity or a sensitivity in (0, 1)."""

    kind: str  # "specificity" or "sensitivity"
    value: float

    def __post_init__(self) -> None:
        if self.kind not in ("specificity", "sensitivity"):
            raise ValueError(f"An operating target must be a specificity or a sensitivity, but got {self.kind!r}.")
        if not (isinstance(self.value, int | float) and 0.0 < self.value < 1.0):
            raise ValueError(f"`0 < target {self.kind} < 1` must hold, but got {self.value}.")

    def describe(self) -> str:
        return f"COVID {self.kind} {self.value:g} on validation"

    @property
    def ranked_figure(self) -> str:
        """The figure a target leaves free, which the ranking maximises: sensitivity at a
        fixed specificity, or specificity at a fixed sensitivity."""
        return "op_sensitivity" if self.kind == "specificity" else "op_specificity"


DEFAULT_TARGET = OperatingTarget("specificity", 0.95)


@dataclass(frozen=True)
class OperatingPoint:
    """Decide COVID when its probability >= ``threshold``; the figures that gives on one split."""

    target: OperatingTarget
    threshold: float
    sensitivity: float | None
    specificity: float | None
    sensitivity_ci: tuple[float, float] | None
    specificity_ci: tuple[float, float] | None


def wilson_interval(successes: int, n: int) -> tuple[float, float] | None:
    """The 95% Wilson score interval of ``successes / n`` (``None`` when ``n == 0``).

    Wilson rather than the normal approximation: it stays inside [0, 1] and is honest at the
    extremes (a sensitivity of 120/120 gets an interval down to about 0.97, not [1, 1]).
    """
    if n == 0:
        return None
    p, z2 = successes / n, _Z95 * _Z95
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = _Z95 * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def _midpoint_above(value: float, scores: np.ndarray) -> float:
    """Halfway from ``value`` to the next higher score (or to 1): the decision boundary with the
    widest margin that still puts ``value`` below it."""
    higher = scores[scores > value]
    upper = float(higher.min()) if len(higher) else max(1.0, value)
    return (value + upper) / 2 if upper > value else float(np.nextafter(value, np.inf))


def _midpoint_below(value: float, scores: np.ndarray) -> float:
    lower = scores[scores < value]
    return (value + float(lower.max())) / 2 if len(lower) else value


def choose_threshold(is_covid: np.ndarray, covid_score: np.ndarray, target: OperatingTarget) -> float | None:
    """The COVID threshold that meets ``target`` on these labels and scores with the most room.

    For a specificity target the threshold sits just above the ``ceil(target * negatives)``-th
    lowest non-COVID score (so at least that share of non-COVID images falls below it), halfway
    to the next score; for a sensitivity target, symmetrically below the positives. ``None``
    when the class the target counts is absent.
    """
    positive = np.asarray(is_covid, dtype=bool)
    scores = np.asarray(covid_score, dtype=np.float64)
    if target.kind == "specificity":
        negatives = np.sort(scores[~positive])
        if len(negatives) == 0:
            return None
        k = math.ceil(target.value * len(negatives) - 1e-9)
        return _midpoint_above(float(negatives[k - 1]), scores)
    positives = np.sort(scores[positive])[::-1]
    if len(positives) == 0:
        return None
    k = math.ceil(target.value * len(positives) - 1e-9)
    return _midpoint_below(float(positives[k - 1]), scores)


def at_threshold(
    is_covid: np.ndarray, covid_score: np.ndarray, threshold: float, target: OperatingTarget = DEFAULT_TARGET
) -> OperatingPoint:
    """Sensitivity and specificity (with intervals) of deciding COVID at ``covid_score >= threshold``."""
    positive = np.asarray(is_covid, dtype=bool)
    flagged = np.asarray(covid_score, dtype=np.float64) >= threshold
    tp, n_pos = int((flagged & positive).sum()), int(positive.sum())
    tn, n_neg = int((~flagged & ~positive).sum()), int((~positive).sum())
    return OperatingPoint(
        target=target,
        threshold=float(threshold),
        sensitivity=tp / n_pos if n_pos else None,
        specificity=tn / n_neg if n_neg else None,
        sensitivity_ci=wilson_interval(tp, n_pos),
        specificity_ci=wilson_interval(tn, n_neg),
    )


def operating_point(is_covid: np.ndarray, covid_score: np.ndarray, target: OperatingTarget) -> OperatingPoint | None:
    """Choose the threshold for ``target`` on this split and measure it there (``None`` if it cannot be chosen)."""
    threshold = choose_threshold(is_covid, covid_score, target)
    return None if threshold is None else at_threshold(is_covid, covid_score, threshold, target)

"""Greedy ensemble selection with replacement (Caruana et al., ICML 2004), on stored probabilities.

As auto-sklearn and AutoGluon do it: start from nothing, and in each round add the candidate
(again, if it helps most) whose inclusion gives the averaged probabilities the lowest
validation log loss. A candidate picked ``c`` times of ``rounds`` gets weight ``c / rounds``.
Log loss is a proper scoring rule that moves smoothly with every probability, so 360
validation images choose weights far more steadily than a sensitivity at one threshold would.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["DEFAULT_ROUNDS", "Selection", "log_loss", "select_ensemble"]

DEFAULT_ROUNDS = 25  # AutoGluon's default for its weighted ensemble
_EPS = 1e-7


def log_loss(labels: np.ndarray, proba: np.ndarray) -> float:
    """Mean negative log probability of the true class (clipped like scikit-learn's)."""
    picked = proba[np.arange(len(labels)), labels]
    return float(-np.log(np.clip(picked, _EPS, 1.0)).mean())


@dataclass(frozen=True)
class Selection:
    """Weights over the candidates (summing to 1) and the validation log loss after each round."""

    weights: tuple[float, ...]
    losses: tuple[float, ...]

    @property
    def chosen(self) -> list[int]:
        """Indices of the candidates with a weight, in candidate order."""
        return [i for i, w in enumerate(self.weights) if w > 0]


def select_ensemble(candidates: Sequence[np.ndarray], labels: np.ndarray, rounds: int = DEFAULT_ROUNDS) -> Selection:
    """Caruana's greedy forward selection with replacement over ``candidates`` (each ``n x k``).

    Ties go to the earlier candidate, so with candidates in ranking order the better-ranked
    trial wins a tie.
    """
    if not candidates:
        raise ValueError("Ensemble selection needs at least one candidate, but got none.")
    if rounds < 1:
        raise ValueError(f"`rounds >= 1` must hold, but got {rounds}.")
    shapes = {c.shape for c in candidates}
    if len(shapes) != 1 or len(labels) != next(iter(shapes))[0]:
        raise ValueError(
            f"Every candidate must give one probability row per label ({len(labels)}), but got shapes {sorted(shapes)}."
        )
    counts = np.zeros(len(candidates), dtype=int)
    total = np.zeros_like(candidates[0], dtype=np.float64)
    losses = []
    for done in range(rounds):
        scores = [log_loss(labels, (total + c) / (done + 1)) for c in candidates]
        best = int(np.argmin(scores))
        counts[best] += 1
        total += candidates[best]
        losses.append(scores[best])
    return Selection(tuple(float(c / rounds) for c in counts), tuple(losses))

"""``Ranking``: the one definition of "better trial", as an SQL ``ORDER BY`` and as a Python key.

The leaderboard sorts in SQL (10,000 trials, one indexed query per page); the launch summary,
export's default winner and the kept-models decision compare trials in Python. Both come
from the same value, so they cannot drift apart.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, case, literal, true

from search.store._schema import TrialRow

__all__ = [
    "DEFAULT_RANKING",
    "DIRECTIONS",
    "MIN_SPECIFICITY",
    "Ranking",
    "check_max_hidden_lungs_auc",
    "check_min_lung_focus_ratio",
    "check_min_specificity",
    "meets_floor",
    "meets_focus",
    "meets_hidden",
]

# Columns a ranking may sort on, and their direction (True: higher is better).
DIRECTIONS: dict[str, bool] = {
    "op_sensitivity": True,
    "op_sensitivity_low": True,
    "op_specificity": True,
    "op_specificity_low": True,
    "covid_sensitivity": True,
    "covid_sensitivity_low": True,
    "lung_focus": True,
    "lung_focus_ratio": True,
    "pointing_game": True,
    "hidden_lungs_auc": False,
    "roc_auc": True,
    "covid_auc": True,
    "covid_specificity": True,
    "covid_ppv": True,
    "covid_npv": True,
    "accuracy": True,
    "balanced_accuracy": True,
    "loss": False,
    "wall_time_s": False,
    "params": False,
}

# Sensitivity alone rewards a model that calls every X-ray COVID (sensitivity 1.0, specificity
# 0.0): searches do produce such models. Under a rule that sorts on argmax figures, trials below
# this COVID specificity rank after every trial that reaches it; they are kept and shown. The
# default rule ranks at a fixed specificity already, where the floor changes nothing for a real
# model (argmax specificities sit far above it) and still sinks a degenerate one.
MIN_SPECIFICITY = 0.5


def check_min_specificity(value: float) -> float:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"The minimum COVID specificity must lie in [0, 1], but got {value}.")
    return value


def meets_floor(specificity: float | None, min_specificity: float = MIN_SPECIFICITY) -> bool:
    """Whether a trial ranks among the trials that reach the specificity floor (unknown: no)."""
    return specificity is not None and specificity >= min_specificity


def check_min_lung_focus_ratio(value: float | None) -> float | None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value >= 0
    if value is not None and not ok:
        raise ValueError(f"`min_lung_focus_ratio >= 0` must hold, but got min_lung_focus_ratio={value!r}.")
    return value


def meets_focus(ratio: float | None, minimum: float | None) -> bool:
    """Whether a trial satisfies a study's lung-focus constraint (``ratio >= minimum``).

    No constraint (``minimum`` None): yes. An unmeasured (None or NaN) ratio: no, a trial that
    could not show where it looks does not meet it (the same reading as the constraint value
    Optuna's sampler gets, see ``search._study.focus_constraint``).
    """
    if minimum is None:
        return True
    return ratio is not None and not math.isnan(ratio) and ratio >= minimum


def check_max_hidden_lungs_auc(value: float | None) -> float | None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and 0.5 <= value <= 1.0
    if value is not None and not ok:
        raise ValueError(f"`0.5 <= max_hidden_lungs_auc <= 1` must hold, but got max_hidden_lungs_auc={value!r}.")
    return value


def meets_hidden(auc: float | None, maximum: float | None) -> bool:
    """Whether a trial satisfies a study's lungs-hidden constraint: ``max(auc, 1 - auc) <= maximum``.

    An AUC below chance separates the classes as well as its mirror above it (the outside still
    tells them apart, inverted), so both sides count. No constraint (``maximum`` None): yes. An
    unmeasured (None or NaN) AUC: no, a trial whose decision could not be checked without the
    lungs does not meet it (as its constraint value for Optuna's sampler says, see
    ``search._study.hidden_constraint``).
    """
    if maximum is None:
        return True
    return auc is not None and not math.isnan(auc) and max(auc, 1.0 - auc) <= maximum


def _value(row: Any, name: str) -> float | None:
    value = row.get(name) if isinstance(row, Mapping) else getattr(row, name, None)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return float(value)


@dataclass(frozen=True)
class Ranking:
    """With a study's constraints, the trials that meet all of them first: ``min_lung_focus_ratio``
    (Grad-CAM lung focus / lung area at least this) and ``max_hidden_lungs_auc`` (COVID AUC with
    the lungs hidden at most this); then trials that reach ``min_specificity``; within each group,
    ``keys`` in order (each in its own direction, unknown values last); then trial number and engine.

    The constraints come first so that the top row (the leaderboard's first, the default winner)
    is a feasible trial whenever one exists, even one below the specificity floor.
    """

    keys: tuple[str, ...] = ("op_sensitivity", "lung_focus", "covid_auc")
    min_specificity: float = MIN_SPECIFICITY
    min_lung_focus_ratio: float | None = None
    max_hidden_lungs_auc: float | None = None

    def __post_init__(self) -> None:
        unknown = [k for k in self.keys if k not in DIRECTIONS]
        if unknown or not self.keys:
            raise ValueError(f"A ranking must list columns among {', '.join(DIRECTIONS)}, but got {list(self.keys)}.")
        check_min_specificity(self.min_specificity)
        check_min_lung_focus_ratio(self.min_lung_focus_ratio)
        check_max_hidden_lungs_auc(self.max_hidden_lungs_auc)

    @classmethod
    def for_figure(
        cls,
        figure: str,
        min_specificity: float = MIN_SPECIFICITY,
        min_lung_focus_ratio: float | None = None,
        max_hidden_lungs_auc: float | None = None,
    ) -> Ranking:
        """The default rule around a study's ranked figure (see ``OperatingTarget.ranked_figure``)."""
        return cls((figure, "lung_focus", "covid_auc"), min_specificity, min_lung_focus_ratio, max_hidden_lungs_auc)

    def with_keys(self, keys: Sequence[str], min_specificity: float | None = None) -> Ranking:
        """The same constraints with other sort keys (and floor): a rule chosen on the leaderboard."""
        floor = self.min_specificity if min_specificity is None else min_specificity
        return Ranking(tuple(keys), floor, self.min_lung_focus_ratio, self.max_hidden_lungs_auc)

    @property
    def constrained(self) -> bool:
        return self.min_lung_focus_ratio is not None or self.max_hidden_lungs_auc is not None

    def constraint_text(self, joiner: str = " and ") -> str:
        """The study's constraints in words ("" without any): joined by " and " for what a trial
        must meet, by " or " for what it may miss ("trials that miss A or B rank last")."""
        parts = []
        if self.min_lung_focus_ratio is not None:
            parts.append(f"lung focus / lung area >= {self.min_lung_focus_ratio:g}")
        if self.max_hidden_lungs_auc is not None:
            top = self.max_hidden_lungs_auc
            parts.append(f"COVID AUC with the lungs hidden between {1.0 - top:g} and {top:g}")
        return joiner.join(parts)

    def below_floor(self) -> ColumnElement[int]:
        """1 for rows below the specificity floor (or without a specificity), else 0."""
        return case((TrialRow.covid_specificity >= self.min_specificity, 0), else_=1)

    def infeasible(self) -> ColumnElement[int]:
        """1 for rows that violate a constraint (an unmeasured figure does: NULL compares false),
        else 0; always 0 without a constraint."""
        if not self.constrained:
            return literal(0)
        focus, hidden = self.min_lung_focus_ratio, self.max_hidden_lungs_auc
        meets = and_(
            true() if focus is None else TrialRow.lung_focus_ratio >= focus,
            true() if hidden is None else TrialRow.hidden_lungs_auc.between(1.0 - hidden, hidden),
        )
        return case((meets, 0), else_=1)

    def feasible(self, row: Any) -> bool:
        """Whether a row (an object or a mapping) meets the study's constraints; the Python
        reading of :meth:`infeasible`."""
        return meets_focus(_value(row, "lung_focus_ratio"), self.min_lung_focus_ratio) and meets_hidden(
            _value(row, "hidden_lungs_auc"), self.max_hidden_lungs_auc
        )

    def order_by(self) -> list[ColumnElement[Any]]:
        """The SQL sort clauses, best row first."""
        order = [
            getattr(TrialRow, k).desc().nulls_last() if DIRECTIONS[k] else getattr(TrialRow, k).asc().nulls_last()
            for k in self.keys
        ]
        constraint = [self.infeasible()] if self.constrained else []
        return [*constraint, self.below_floor(), *order, TrialRow.trial_number, TrialRow.engine]

    def key(self, row: Any) -> tuple[Any, ...]:
        """A Python sort key (ascending: best first) over a row, an object or a mapping, that
        orders exactly as :meth:`order_by` does in SQL."""
        parts: list[Any] = [0 if self.feasible(row) else 1] if self.constrained else []
        parts.append(0 if meets_floor(_value(row, "covid_specificity"), self.min_specificity) else 1)
        for name in self.keys:
            value = _value(row, name)
            parts.append((1, 0.0) if value is None else (0, -value if DIRECTIONS[name] else value))
        return (*parts, _value(row, "trial_number") or 0, str(_get(row, "engine") or ""))


def _get(row: Any, name: str) -> Any:
    return row.get(name) if isinstance(row, Mapping) else getattr(row, name, None)


DEFAULT_RANKING = Ranking()

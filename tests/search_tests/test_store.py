"""search.store: the ranking every command shares (launch summary, default winner, kept models)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from search._recording import _rank_key
from search._records import find_trial
from search.space import TrialConfig
from search.store import MIN_SPECIFICITY, ResultStore, check_min_specificity, config_row, meets_floor

CONFIG = TrialConfig("MobileNetV2", 1.0, 64, 0.1, 1e-3, 0.0, "three")


def _store(path: Path, trials: list[tuple[float, float | None]]) -> ResultStore:
    """Completed trials numbered 0.. with the given (COVID sensitivity, COVID specificity)."""
    store = ResultStore(f"sqlite:///{path}")
    store.create_schema()
    for number, (sensitivity, specificity) in enumerate(trials):
        row = config_row("s", number, CONFIG, "COMPLETE")
        row.covid_sensitivity, row.covid_specificity = sensitivity, specificity
        store.record(row)
    return store


def test_ranked_puts_trials_below_the_specificity_floor_last(tmp_path: Path) -> None:
    store = _store(tmp_path / "r.db", [(1.0, 0.0), (0.9, 0.95), (0.95, 0.9), (0.99, None)])
    assert [r.trial_number for r in store.ranked("s")] == [2, 1, 0, 3]
    assert [r.trial_number for r in store.ranked("s", min_specificity=0.0)] == [0, 2, 1, 3]


def test_the_default_winner_is_a_real_model_and_a_degenerate_one_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = _store(tmp_path / "mixed.db", [(1.0, 0.0), (0.9, 0.95)])
    assert find_trial(store, "s", None).trial_number == 1
    assert capsys.readouterr().err == ""
    only_degenerate = _store(tmp_path / "degenerate.db", [(1.0, 0.1)])
    assert find_trial(only_degenerate, "s", None).trial_number == 0
    warning = capsys.readouterr().err
    assert "no completed trial of 's' reaches COVID specificity 0.50" in warning
    assert "the top-ranked trial 0 has 0.10 " in warning


@pytest.mark.parametrize(
    ("specificity", "values", "other_specificity", "other_values", "first_wins"),
    [
        (0.9, (0.9, 0.3, 0.9), 0.0, (1.0, 0.9, 0.99), True),  # the floor comes before the rule
        (0.9, (0.9, 0.3, 0.9), 0.9, (1.0, None, 0.5), False),  # then sensitivity
        (0.9, (0.9, None, 0.9), 0.9, (0.9, 0.1, 0.5), False),  # unknown focus ranks last
        (None, (1.0, 1.0, 1.0), 0.5, (0.1, 0.1, 0.1), False),  # unknown specificity is below the floor
    ],
)
def test_the_python_rank_key_agrees_with_the_sql_order(
    specificity: float | None,
    values: tuple[float | None, ...],
    other_specificity: float | None,
    other_values: tuple[float | None, ...],
    first_wins: bool,
) -> None:
    assert (_rank_key(specificity, values) > _rank_key(other_specificity, other_values)) is first_wins


def test_unknown_values_make_the_lowest_rank_key() -> None:
    assert _rank_key(None, (None,)) == (0.0, -math.inf)


def test_meets_floor() -> None:
    assert meets_floor(MIN_SPECIFICITY) and not meets_floor(MIN_SPECIFICITY - 0.01) and not meets_floor(None)


@pytest.mark.parametrize("floor", [-0.01, 1.01, math.nan])
def test_a_bad_floor_is_refused(floor: float) -> None:
    with pytest.raises(ValueError, match=r"The minimum COVID specificity must lie in \[0, 1\], but got"):
        check_min_specificity(floor)

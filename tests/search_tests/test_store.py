"""search.store: the one ranking every command shares (leaderboard, launch summary, default winner, kept models)."""

from __future__ import annotations

import math
import random
from pathlib import Path

import pytest

from search._records import find_trial
from search.space import TrialConfig
from search.store import (
    DEFAULT_RANKING,
    MIN_SPECIFICITY,
    Ranking,
    ResultStore,
    check_min_specificity,
    config_row,
    meets_floor,
)

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


ARGMAX = Ranking(("covid_sensitivity", "lung_focus", "roc_auc"))


def test_ranked_puts_trials_below_the_specificity_floor_last(tmp_path: Path) -> None:
    store = _store(tmp_path / "r.db", [(1.0, 0.0), (0.9, 0.95), (0.95, 0.9), (0.99, None)])
    assert [r.trial_number for r in store.ranked("s", ranking=ARGMAX)] == [2, 1, 0, 3]
    unguarded = Ranking(ARGMAX.keys, min_specificity=0.0)
    assert [r.trial_number for r in store.ranked("s", ranking=unguarded)] == [0, 2, 1, 3]


def test_the_default_winner_is_a_real_model_and_a_degenerate_one_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = _store(tmp_path / "mixed.db", [(1.0, 0.0), (0.9, 0.95)])
    assert find_trial(store, "s", None, ranking=ARGMAX).trial_number == 1
    assert capsys.readouterr().err == ""
    only_degenerate = _store(tmp_path / "degenerate.db", [(1.0, 0.1)])
    assert find_trial(only_degenerate, "s", None, ranking=ARGMAX).trial_number == 0
    warning = capsys.readouterr().err
    assert "no completed trial of 's' reaches COVID specificity 0.50" in warning
    assert "the top-ranked trial 0 has 0.10 " in warning


def test_the_default_winner_says_when_no_trial_meets_the_lungs_hidden_constraint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = ResultStore(f"sqlite:///{tmp_path / 'hidden.db'}")
    store.create_schema()
    for number, auc in enumerate([0.83, None]):
        row = config_row("s", number, CONFIG, "COMPLETE")
        row.covid_sensitivity, row.covid_specificity, row.hidden_lungs_auc = 0.9 - number / 10, 0.95, auc
        store.record(row)
    ranking = Ranking(ARGMAX.keys, ARGMAX.min_specificity, max_hidden_lungs_auc=0.6)
    assert find_trial(store, "s", None, ranking=ranking).trial_number == 0
    assert (
        "no completed trial of 's' meets its constraint COVID AUC with the lungs hidden between 0.4 and 0.6; the "
        "top-ranked trial 0 "
        "has AUC with the lungs hidden 0.83."
    ) in capsys.readouterr().err


@pytest.mark.parametrize(
    ("ratios", "minimum", "warned"),
    [
        ([1.6, 0.9], 1.5, ""),
        ([1.2, 0.9], 1.5, "the top-ranked trial 0 has lung focus ratio 1.20."),
        ([None, None], 1.5, "the top-ranked trial 0 has no measured lung focus."),
        ([0.2, 0.1], None, ""),
    ],
)
def test_the_default_winner_says_when_no_trial_meets_the_focus_constraint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], ratios: list[float | None], minimum: float | None, warned: str
) -> None:
    store = ResultStore(f"sqlite:///{tmp_path / 'focus.db'}")
    store.create_schema()
    for number, (sensitivity, ratio) in enumerate(zip([0.9, 0.8], ratios, strict=True)):
        row = config_row("s", number, CONFIG, "COMPLETE")
        row.covid_sensitivity, row.covid_specificity, row.lung_focus_ratio = sensitivity, 0.95, ratio
        store.record(row)
    ranking = Ranking(ARGMAX.keys, ARGMAX.min_specificity, min_lung_focus_ratio=minimum)
    assert find_trial(store, "s", None, ranking=ranking).trial_number == 0
    err = capsys.readouterr().err
    if warned:
        assert f"no completed trial of 's' meets its constraint lung focus / lung area >= {minimum:g}; {warned}" in err
    else:
        assert "constraint" not in err


# Few distinct values, so ties are common; None stands for an unmeasured figure.
_VALUES = {
    "covid_specificity": [None, 0.3, 0.5, 0.9, 0.95],
    "op_sensitivity": [None, 0.9, 0.95, 1.0],
    "lung_focus": [None, 0.3, 0.4],
    "lung_focus_ratio": [None, 0.8, 1.0, 1.2],
    "covid_auc": [None, 0.98, 0.99],
    "covid_sensitivity": [None, 0.9, 1.0],
    "loss": [None, 0.1, 0.2],
    "hidden_lungs_auc": [None, 0.3, 0.5, 0.6, 0.75],
}


@pytest.mark.parametrize(
    "ranking",
    [
        DEFAULT_RANKING,
        ARGMAX,
        Ranking(("loss", "op_sensitivity")),  # ascending first key
        Ranking(("covid_sensitivity",), min_specificity=0.0),
        Ranking(("op_sensitivity", "lung_focus", "covid_auc"), min_specificity=0.95),
        # A lung-focus constraint: at, between and below the stored ratios (equality is feasible).
        Ranking.for_figure("op_sensitivity", min_lung_focus_ratio=1.0),
        Ranking(("lung_focus_ratio", "loss"), min_lung_focus_ratio=0.9),
        Ranking(("covid_sensitivity",), min_specificity=0.0, min_lung_focus_ratio=0.0),
        # A lungs-hidden constraint, alone and with the focus one.
        Ranking.for_figure("op_sensitivity", max_hidden_lungs_auc=0.6),
        Ranking(("hidden_lungs_auc", "loss"), min_lung_focus_ratio=1.0, max_hidden_lungs_auc=0.75),
    ],
)
@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_the_python_key_orders_exactly_as_sql_does(
    tmp_path: Path, request: pytest.FixtureRequest, ranking: Ranking, backend: str
) -> None:
    url = request.getfixturevalue("postgres") if backend == "postgresql" else f"sqlite:///{tmp_path / 'random.db'}"
    study = f"random-{request.node.callspec.id}"  # one PostgreSQL database serves every case
    rng = random.Random(7)
    store = ResultStore(url)
    store.create_schema()
    for number in range(80):
        # Some trial numbers in both engines: only the engine then tells the rows apart.
        for engine in rng.sample(["optuna", "keras-tuner"], k=rng.choice([1, 1, 2])):
            row = config_row(study, number, CONFIG, "COMPLETE", engine=engine)
            for name, choices in _VALUES.items():
                setattr(row, name, rng.choice(choices))
            store.record(row)
    ranked = store.ranked(study, ranking=ranking)
    in_sql = [(r.engine, r.trial_number) for r in ranked]
    in_python = [(r.engine, r.trial_number) for r in sorted(store.trials(study), key=ranking.key)]
    assert len(in_sql) > 80 and in_sql == in_python
    if ranking.constrained:  # every feasible trial before every infeasible one
        feasible = [ranking.feasible(r) for r in ranked]
        assert feasible == sorted(feasible, reverse=True) and True in feasible and False in feasible
    store.dispose()


def test_the_key_reads_mappings_and_treats_nan_as_unknown() -> None:
    known = {"trial_number": 1, "engine": "optuna", "covid_specificity": 0.9, "op_sensitivity": 0.9}
    unknown = {**known, "trial_number": 0, "op_sensitivity": math.nan}
    assert DEFAULT_RANKING.key(known) < DEFAULT_RANKING.key(unknown)


def test_meets_floor() -> None:
    assert meets_floor(MIN_SPECIFICITY) and not meets_floor(MIN_SPECIFICITY - 0.01) and not meets_floor(None)


@pytest.mark.parametrize("floor", [-0.01, 1.01, math.nan])
def test_a_bad_floor_is_refused(floor: float) -> None:
    with pytest.raises(ValueError, match=r"The minimum COVID specificity must lie in \[0, 1\], but got"):
        check_min_specificity(floor)
    with pytest.raises(ValueError, match=r"The minimum COVID specificity must lie in \[0, 1\], but got"):
        Ranking(min_specificity=floor)


@pytest.mark.parametrize("keys", [(), ("covid_sensitivity", "popularity")])
def test_bad_rules_are_refused(keys: tuple[str, ...]) -> None:
    with pytest.raises(ValueError, match=r"A ranking must list columns among op_sensitivity, .*, but got \["):
        Ranking(keys)

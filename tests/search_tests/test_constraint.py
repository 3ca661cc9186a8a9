"""A study's constraints, lung focus (``min_lung_focus_ratio``) and the COVID AUC with the lungs
hidden (``max_hidden_lungs_auc``): their settings and flags, the constraint values Optuna's sampler
sees, the feasible-first ranking, the launch summary, the default export pool, the KerasTuner
refusal, and a real search whose worker processes apply both."""

from __future__ import annotations

import math
import re
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import optuna
import pytest
from optuna.trial import TrialState

from cxrdata.synthetic import SyntheticSpec, make_synthetic_dataset
from search import SearchError
from search._study import (
    FOCUS_CONSTRAINT,
    HIDDEN_CONSTRAINT,
    StudyInfo,
    create_study,
    focus_constraint,
    hidden_constraint,
    load_study,
    make_storage,
)
from search.space import DEFAULT_SPACE_FILE, SearchSpace, TrialConfig, load_space
from search.store import ArtifactRecord, Ranking, ResultStore, TrialRow, config_row, meets_focus, meets_hidden
from tests.conftest import BASE, launch, run_module

RULE = "`min_lung_focus_ratio >= 0` must hold, but got"
HIDDEN_RULE = "`0.5 <= max_hidden_lungs_auc <= 1` must hold, but got"


def _space(minimum: float | None, maximum: float | None = None) -> SearchSpace:
    space = load_space().with_overrides(backbones=["MobileNet_0.25"], image_size=32, max_epochs=2)
    training = replace(space.training, min_lung_focus_ratio=minimum, max_hidden_lungs_auc=maximum)
    return replace(space, training=training).check()


def _info(minimum: float | None, maximum: float | None = None) -> StudyInfo:
    return StudyInfo(_space(minimum, maximum), "/nowhere", "0" * 16, "none", 0, 0, "/tmp", "/tmp")


# --- the setting, the flag and the ranking refuse a bad value in one sentence ---------------

BAD = [(-1, "-1"), (-0.01, "-0.01"), (math.nan, "nan"), (math.inf, "inf"), ("high", "'high'"), (True, "True")]


@pytest.mark.parametrize(("value", "shown"), BAD, ids=[s for _, s in BAD])
def test_a_bad_setting_is_refused_in_one_sentence(value: Any, shown: str) -> None:
    data = load_space().to_dict()
    data["training"]["min_lung_focus_ratio"] = value
    with pytest.raises(SearchError) as info:
        SearchSpace.from_dict(data).check()
    assert str(info.value) == f"{RULE} min_lung_focus_ratio={shown}."


@pytest.mark.parametrize(("toml", "shown"), [("-1", "-1"), ("nan", "nan"), ("-inf", "-inf"), ('"1.2"', "'1.2'")])
def test_a_bad_value_in_the_toml_training_table_is_refused(tmp_path: Path, toml: str, shown: str) -> None:
    config = tmp_path / "space.toml"
    text = DEFAULT_SPACE_FILE.read_text(encoding="utf-8")
    config.write_text(text.replace("# min_lung_focus_ratio = 1.1", f"min_lung_focus_ratio = {toml}"), encoding="utf-8")
    with pytest.raises(SearchError) as info:
        load_space(config).check()
    assert str(info.value) == f"{RULE} min_lung_focus_ratio={shown}."


def test_the_packaged_default_is_off_and_its_comment_is_a_valid_setting(tmp_path: Path) -> None:
    assert load_space().training.min_lung_focus_ratio is None
    text = DEFAULT_SPACE_FILE.read_text(encoding="utf-8")
    assert "# min_lung_focus_ratio = 1.1" in text
    config = tmp_path / "space.toml"
    config.write_text(text.replace("# min_lung_focus_ratio = 1.1", "min_lung_focus_ratio = 1.1"), encoding="utf-8")
    assert load_space(config).check().training.min_lung_focus_ratio == 1.1


# (flag, its rule, a value it refuses): both constraints' flags are refused by the parser alike.
BAD_FLAGS = [
    *(("--min-lung-focus-ratio", "`--min-lung-focus-ratio >= 0`", t) for t in ["-1", "nan", "inf", "high", ""]),
    *(("--max-hidden-lungs-auc", "`0.5 <= --max-hidden-lungs-auc <= 1`", t) for t in ["0.4", "1.5", "nan", "low", ""]),
]


@pytest.mark.parametrize(("flag", "rule", "text"), BAD_FLAGS)
def test_a_bad_flag_is_refused_by_the_parser(
    flag: str, rule: str, text: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from search.launch import parse_args

    with pytest.raises(SystemExit) as info:
        parse_args(["--trials", "1", flag, text])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {flag}: {rule} must hold, but got {text!r}" in err


GOOD_FLAGS = [
    *(("--min-lung-focus-ratio", t, v) for t, v in [("0", 0.0), ("1.25", 1.25), (None, None)]),
    *(("--max-hidden-lungs-auc", t, v) for t, v in [("0.5", 0.5), ("0.6", 0.6), ("1", 1.0), (None, None)]),
]


@pytest.mark.parametrize(("flag", "text", "value"), GOOD_FLAGS)
def test_the_flag_parses(flag: str, text: str | None, value: float | None) -> None:
    from search.launch import parse_args

    args = parse_args(["--trials", "1", *([flag, text] if text is not None else [])])
    assert getattr(args, flag.removeprefix("--").replace("-", "_")) == value


@pytest.mark.parametrize(("value", "shown"), BAD, ids=[s for _, s in BAD])
def test_a_ranking_refuses_a_bad_constraint(value: Any, shown: str) -> None:
    with pytest.raises(ValueError) as info:
        Ranking(min_lung_focus_ratio=value)
    assert str(info.value) == f"{RULE} min_lung_focus_ratio={shown}."


HIDDEN_BAD = [(0.49, "0.49"), (1.01, "1.01"), (-1, "-1"), (math.nan, "nan"), ("0.6", "'0.6'"), (True, "True")]


@pytest.mark.parametrize(("value", "shown"), HIDDEN_BAD, ids=[s for _, s in HIDDEN_BAD])
def test_a_bad_lungs_hidden_setting_is_refused_in_one_sentence(value: Any, shown: str) -> None:
    data = load_space().to_dict()
    data["training"]["max_hidden_lungs_auc"] = value
    with pytest.raises(SearchError) as info:
        SearchSpace.from_dict(data).check()
    assert str(info.value) == f"{HIDDEN_RULE} max_hidden_lungs_auc={shown}."
    with pytest.raises(ValueError) as ranking:
        Ranking(max_hidden_lungs_auc=value)
    assert str(ranking.value) == f"{HIDDEN_RULE} max_hidden_lungs_auc={shown}."


def test_the_lungs_hidden_default_is_off_and_its_comment_is_a_valid_setting(tmp_path: Path) -> None:
    assert load_space().training.max_hidden_lungs_auc is None
    text = DEFAULT_SPACE_FILE.read_text(encoding="utf-8")
    config = tmp_path / "space.toml"
    config.write_text(text.replace("# max_hidden_lungs_auc = 0.6", "max_hidden_lungs_auc = 0.6"), encoding="utf-8")
    assert load_space(config).check().training.max_hidden_lungs_auc == 0.6


# --- the constraint value and its agreement with the ranking ---------------------------------


@pytest.mark.parametrize(
    ("ratio", "minimum", "value", "feasible"),
    [
        (1.5, 1.2, -0.3, True),
        (1.2, 1.2, 0.0, True),  # equality is feasible, for Optuna (<= 0) and the ranking (>=) alike
        (1.0, 1.2, 0.2, False),
        (0.0, 0.0, 0.0, True),
        (None, 1.2, 2.2, False),  # unmeasured: infeasible, worse than any measured trial
        (math.nan, 1.2, 2.2, False),
        (None, 0.0, 1.0, False),
    ],
)
def test_the_constraint_value_and_the_ranking_agree(
    ratio: float | None, minimum: float, value: float, feasible: bool
) -> None:
    assert focus_constraint(ratio, minimum) == pytest.approx(value)
    assert (focus_constraint(ratio, minimum) <= 0) is feasible
    assert meets_focus(ratio, minimum) is feasible
    assert Ranking(min_lung_focus_ratio=minimum).feasible({"lung_focus_ratio": ratio}) is feasible
    assert Ranking().feasible({"lung_focus_ratio": ratio}), "no constraint: every trial is feasible"


@pytest.mark.parametrize(
    ("auc", "maximum", "value", "feasible"),
    [
        (0.55, 0.6, -0.05, True),
        (0.6, 0.6, 0.0, True),  # equality is feasible, for Optuna (<= 0) and the ranking (<=) alike
        (0.83, 0.6, 0.23, False),
        (0.5, 0.5, 0.0, True),  # a lung_mask trial under the strictest constraint
        (0.45, 0.6, -0.05, True),
        (0.3, 0.6, 0.1, False),  # below chance, inverted, the outside still tells the classes apart
        (0.4, 0.6, 0.0, True),
        (None, 0.6, 1.4, False),  # unmeasured: infeasible, worse than any measured trial (at most 0.4)
        (math.nan, 0.6, 1.4, False),
    ],
)
def test_the_lungs_hidden_constraint_value_and_the_ranking_agree(
    auc: float | None, maximum: float, value: float, feasible: bool
) -> None:
    assert hidden_constraint(auc, maximum) == pytest.approx(value)
    assert (hidden_constraint(auc, maximum) <= 0) is feasible
    assert meets_hidden(auc, maximum) is feasible
    assert Ranking(max_hidden_lungs_auc=maximum).feasible({"hidden_lungs_auc": auc}) is feasible
    # With both constraints, a trial must meet both.
    both = Ranking(min_lung_focus_ratio=1.0, max_hidden_lungs_auc=maximum)
    assert both.feasible({"hidden_lungs_auc": auc, "lung_focus_ratio": 1.5}) is feasible
    assert not both.feasible({"hidden_lungs_auc": auc, "lung_focus_ratio": 0.9})


# --- Optuna's constrained search, through the study's objective, as a worker loads it --------

# (validation loss, lung focus / lung area, COVID AUC with the lungs hidden) of four trials;
# "pruned" is pruned before either is measured.
Outcome = tuple[float, float | None, float | None]
_OUTCOMES: list[Outcome | str] = [(0.2, 0.8, 0.55), (0.5, 1.3, 0.58), "pruned", (0.1, None, 0.9)]


def _fake_outcome(item: Outcome | str) -> Any:
    if item == "pruned":
        fit = SimpleNamespace(pruned=True, history=[SimpleNamespace(epoch=3)], best_val_loss=0.9)
        return SimpleNamespace(fit=fit, metrics=None, focus=None, hidden_lungs_auc=None)
    loss, ratio, hidden = cast(Outcome, item)
    fit = SimpleNamespace(pruned=False, history=[SimpleNamespace(epoch=1)], best_val_loss=loss)
    focus = None if ratio is None else SimpleNamespace(ratio=ratio)
    metrics = SimpleNamespace(covid_sensitivity=0.9, accuracy=0.9)
    return SimpleNamespace(fit=fit, metrics=metrics, focus=focus, hidden_lungs_auc=hidden)


def _optimize_as_a_worker(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, minimum: float | None, maximum: float | None = None
) -> optuna.Study:
    """Create the study as launch does, load it as a second worker does, run the real objective
    on four made-up outcomes (no training)."""
    import search._objective as objective_module

    url = f"sqlite:///{tmp_path / 'o.db'}"
    create_study(make_storage(url), "s", _info(minimum, maximum))
    study, info = load_study(make_storage(url), "s", worker_index=1)
    assert info.space.training.min_lung_focus_ratio == minimum, "the setting travels in the study's space"
    assert info.space.training.max_hidden_lungs_auc == maximum
    outcomes = iter(_OUTCOMES)
    monkeypatch.setattr(objective_module, "run_and_record", lambda *a, **k: _fake_outcome(next(outcomes)))
    data, recorder = cast(Any, None), cast(Any, None)
    objective = objective_module.Objective(space=info.space, data=data, recorder=recorder, weights="none", seed=0)
    study.optimize(objective, n_trials=len(_OUTCOMES))
    return study


def test_a_study_made_with_the_option_gives_optuna_the_constraint(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from optuna.samplers._tpe.sampler import _split_trials

    study = _optimize_as_a_worker(monkeypatch, tmp_path, 1.2)
    trials = study.get_trials()
    assert [t.state for t in trials] == [
        TrialState.COMPLETE,
        TrialState.COMPLETE,
        TrialState.PRUNED,
        TrialState.COMPLETE,
    ]
    assert [t.constraints for t in trials] == [
        {FOCUS_CONSTRAINT: pytest.approx(0.4)},
        {FOCUS_CONSTRAINT: pytest.approx(-0.1)},
        {},  # pruned: no focus, no value (Optuna reads it as feasible; TPE judges it by its loss)
        {FOCUS_CONSTRAINT: pytest.approx(2.2)},  # unmeasured: infeasible
    ]
    assert [t.user_attrs["lung_focus_ratio"] for t in trials if t.state == TrialState.COMPLETE] == [0.8, 1.3, None]
    assert isinstance(study.sampler, optuna.samplers.TPESampler)
    # Optuna's own reading: the best trial is the feasible one, though two infeasible ones have a lower loss ...
    assert study.best_trial.number == 1
    # ... and TPE's "good" trials are the feasible completed one, then the pruned one, never an infeasible one.
    below, _ = _split_trials(study, trials, n_below=2)
    assert [t.number for t in below] == [1, 2]


def test_both_constraints_reach_optuna_and_a_trial_must_meet_both(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    study = _optimize_as_a_worker(monkeypatch, tmp_path, 1.2, 0.56)
    trials = study.get_trials()
    assert [t.constraints for t in trials] == [
        {FOCUS_CONSTRAINT: pytest.approx(0.4), HIDDEN_CONSTRAINT: pytest.approx(-0.01)},
        {FOCUS_CONSTRAINT: pytest.approx(-0.1), HIDDEN_CONSTRAINT: pytest.approx(0.02)},
        {},
        {FOCUS_CONSTRAINT: pytest.approx(2.2), HIDDEN_CONSTRAINT: pytest.approx(0.34)},
    ]
    assert [t.user_attrs.get("hidden_lungs_auc") for t in trials] == [0.55, 0.58, None, 0.9]
    with pytest.raises(ValueError, match="No feasible trials"):
        study.best_trial  # noqa: B018 - each completed trial misses one constraint or the other

    (tmp_path / "alone").mkdir()
    alone = _optimize_as_a_worker(monkeypatch, tmp_path / "alone", None, 0.6)
    assert [t.constraints for t in alone.get_trials()][1] == {HIDDEN_CONSTRAINT: pytest.approx(-0.02)}
    assert alone.best_trial.number == 0, "the lowest validation loss among the trials at or below 0.6"


def test_without_the_option_no_trial_is_constrained(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    study = _optimize_as_a_worker(monkeypatch, tmp_path, None)
    assert all(t.constraints == {} for t in study.get_trials())
    assert study.best_trial.number == 3, "the lowest validation loss, focus or not"


# --- ranking, launch summary and the default export pool -------------------------------------

CONFIG = TrialConfig("MobileNetV2", 1.0, 64, 0.1, 1e-3, 0.0, "three")


def _rows(url: str, figures: list[tuple[float, float | None]], above_floor: tuple[int, ...] = ()) -> ResultStore:
    """Completed trials with (COVID sensitivity at the target, lung focus / lung area), the COVID
    AUC with the lungs hidden of :data:`HIDDEN` and a saved model; argmax COVID specificity 0.9,
    or 0.99 for the trials ``above_floor``."""
    store = ResultStore(url)
    store.create_schema()
    for number, (sensitivity, ratio) in enumerate(figures):
        row = config_row("s", number, CONFIG, "COMPLETE")
        row.op_sensitivity, row.lung_focus_ratio, row.hidden_lungs_auc = sensitivity, ratio, HIDDEN[number]
        row.covid_specificity = 0.99 if number in above_floor else 0.9
        row.lung_focus = None if ratio is None else ratio / 3
        store.record(row, artifacts=[ArtifactRecord("model", f"id-{number}", f"trial-{number}.keras", 1)])
    return store


# The best sensitivities belong to trials below the constraint (or unmeasured).
FIGURES: list[tuple[float, float | None]] = [(0.99, 0.9), (0.8, 1.3), (0.97, None), (0.85, 1.2), (0.7, 1.19)]
# Their COVID AUC with the lungs hidden: the most sensitive trial reads the outside the most.
HIDDEN: list[float | None] = [0.85, 0.55, 0.5, None, 0.62]


def test_trials_that_violate_the_constraint_rank_after_every_feasible_one(tmp_path: Path) -> None:
    store = _rows(f"sqlite:///{tmp_path / 'r.db'}", FIGURES)
    constrained = Ranking.for_figure("op_sensitivity", min_lung_focus_ratio=1.2)
    assert [r.trial_number for r in store.ranked("s", ranking=constrained)] == [3, 1, 0, 2, 4]
    assert [r.trial_number for r in store.ranked("s", ranking=Ranking.for_figure("op_sensitivity"))] == [0, 2, 3, 1, 4]

    # A feasible trial below the specificity floor still ranks before an infeasible one above it.
    floored = _rows(f"sqlite:///{tmp_path / 'floor.db'}", FIGURES, above_floor=(0,))
    floor_only = Ranking(("op_sensitivity",), min_specificity=0.95)
    assert [r.trial_number for r in floored.ranked("s", ranking=floor_only)] == [0, 2, 3, 1, 4]
    both = Ranking(("op_sensitivity",), min_specificity=0.95, min_lung_focus_ratio=1.2)
    assert [r.trial_number for r in floored.ranked("s", ranking=both)] == [3, 1, 0, 2, 4]


def test_trials_that_decide_without_the_lungs_rank_after_those_that_do_not(tmp_path: Path) -> None:
    store = _rows(f"sqlite:///{tmp_path / 'r.db'}", FIGURES)
    hidden = Ranking.for_figure("op_sensitivity", max_hidden_lungs_auc=0.6)
    ranked = store.ranked("s", ranking=hidden)
    assert [r.trial_number for r in ranked] == [2, 1, 0, 3, 4]
    assert [r.trial_number for r in ranked] == [r.trial_number for r in sorted(ranked, key=hidden.key)]
    both = Ranking.for_figure("op_sensitivity", min_lung_focus_ratio=1.2, max_hidden_lungs_auc=0.6)
    assert [r.trial_number for r in store.ranked("s", ranking=both)] == [1, 0, 2, 3, 4]
    assert both.with_keys(["covid_auc"], 0.5) == Ranking(("covid_auc",), 0.5, 1.2, 0.6), "a chosen rule keeps them"


def test_the_launch_summary_counts_feasible_trials(tmp_path: Path) -> None:
    from search.launch._summary import feasibility_line, top_table

    rows = _rows(f"sqlite:///{tmp_path / 'r.db'}", FIGURES).ranked("s")
    assert feasibility_line(rows, Ranking(min_lung_focus_ratio=1.2)) == (
        "Feasible (lung focus / lung area >= 1.2): 2 of 5 completed trial(s); the others rank after them "
        "(1 without a measured lung focus)."
    )
    assert feasibility_line(rows, Ranking(min_lung_focus_ratio=0.5)) == (
        "Feasible (lung focus / lung area >= 0.5): 4 of 5 completed trial(s); the others rank after them "
        "(1 without a measured lung focus)."
    )
    assert feasibility_line(rows, Ranking(min_lung_focus_ratio=2.0)) == (
        "Feasible (lung focus / lung area >= 2): 0 of 5 completed trial(s); the others rank after them "
        "(1 without a measured lung focus). No trial meets the constraint: the top trial above is infeasible."
    )
    assert feasibility_line([], Ranking(min_lung_focus_ratio=1.0)) == (
        "Feasible (lung focus / lung area >= 1): 0 of 0 completed trial(s)."
    )
    assert feasibility_line(rows, Ranking(max_hidden_lungs_auc=0.6)) == (
        "Feasible (COVID AUC with the lungs hidden between 0.4 and 0.6): 2 of 5 completed trial(s); the others rank "
        "after them "
        "(1 without a measured AUC with the lungs hidden)."
    )
    assert feasibility_line(rows, Ranking(min_lung_focus_ratio=1.2, max_hidden_lungs_auc=0.6)) == (
        "Feasible (lung focus / lung area >= 1.2 and COVID AUC with the lungs hidden between 0.4 and 0.6): 1 of 5 completed "
        "trial(s); the others rank after them (1 without a measured lung focus, 1 without a measured AUC with the "
        "lungs hidden)."
    )
    table = top_table(rows).splitlines()
    assert "focus/lung" in table[0] and re.search(r"\b1\.30\b", "\n".join(table))


def _study_data(store: ResultStore, ranking: Ranking) -> Any:
    return SimpleNamespace(store=store, info=SimpleNamespace(ranking=ranking))


def test_the_default_export_pool_holds_feasible_trials_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from search.export._members import _pool

    store = _rows(f"sqlite:///{tmp_path / 'r.db'}", FIGURES)
    constrained = Ranking.for_figure("op_sensitivity", min_lung_focus_ratio=1.2)
    pool, _ = _pool(_study_data(store, constrained), "s", None, None)
    assert [r.trial_number for r in pool] == [3, 1]
    explicit, _ = _pool(_study_data(store, constrained), "s", 3, None)  # --ensemble 3: the top three, in rank order
    assert [r.trial_number for r in explicit] == [3, 1, 0]
    unconstrained, _ = _pool(_study_data(store, Ranking.for_figure("op_sensitivity")), "s", None, None)
    assert [r.trial_number for r in unconstrained] == [0, 2, 3, 1, 4]
    assert capsys.readouterr().err == ""
    none_feasible, _ = _pool(_study_data(store, replace(constrained, min_lung_focus_ratio=5.0)), "s", None, None)
    assert [r.trial_number for r in none_feasible] == [0, 2, 3, 1, 4]
    assert "no completed trial of 's' with a saved model meets lung focus / lung area >= 5" in capsys.readouterr().err
    by_hidden, _ = _pool(
        _study_data(store, Ranking.for_figure("op_sensitivity", max_hidden_lungs_auc=0.6)), "s", None, None
    )
    assert [r.trial_number for r in by_hidden] == [2, 1]


# --- launch: the flag reaches the stored study; refusals -------------------------------------


def test_the_flag_reaches_the_stored_study_and_its_ranking(tiny: Path, tmp_path: Path) -> None:
    from search.launch import parse_args, prepare

    url = f"sqlite:///{tmp_path / 'o.db'}"
    constraints = ["--min-lung-focus-ratio", "1.2", "--max-hidden-lungs-auc", "0.6"]
    plan = prepare(parse_args(["--trials", "1", "--storage", url, "--data", str(tiny), *BASE, *constraints]))
    assert plan.space.training.min_lung_focus_ratio == 1.2
    _, info = load_study(make_storage(url), "cxr-search", worker_index=3)
    assert info.space.training.min_lung_focus_ratio == 1.2 and info.ranking.min_lung_focus_ratio == 1.2
    assert info.space.training.max_hidden_lungs_auc == 0.6 and info.ranking.max_hidden_lungs_auc == 0.6


CONSTRAINT_FLAGS = [
    ("--min-lung-focus-ratio", "min_lung_focus_ratio", "1.2"),
    ("--max-hidden-lungs-auc", "max_hidden_lungs_auc", "0.6"),
]


@pytest.mark.parametrize(("flag", "name", "value"), CONSTRAINT_FLAGS, ids=[f for f, _, _ in CONSTRAINT_FLAGS])
def test_keras_tuner_refuses_the_constraint(
    flag: str, name: str, value: str, tiny: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from search.launch import main

    url = f"sqlite:///{tmp_path / 'o.db'}"
    args = ["--trials", "1", "--storage", url, "--data", str(tiny), *BASE, "--engine", "keras-tuner"]
    assert main([*args, flag, value]) == 1
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"error: `{name}` needs the Optuna engine (KerasTuner's oracles take no constraints), but got "
        f"{name}={value} with --engine keras-tuner; drop it or use --engine optuna."
    )
    assert not (tmp_path / "o.db").exists(), "refused before anything was written"


@pytest.mark.slow
def test_keras_tuner_refuses_a_study_made_with_the_constraint(tiny: Path, tmp_path: Path) -> None:
    from search.kerastuner import run_keras_tuner
    from search.launch import parse_args, prepare

    url = f"sqlite:///{tmp_path / 'o.db'}"
    prepare(parse_args(["--trials", "1", "--storage", url, "--data", str(tiny), *BASE, "--min-lung-focus-ratio", "1"]))
    with pytest.raises(
        SearchError, match=r"^`min_lung_focus_ratio` needs the Optuna engine .* but got min_lung_focus_ratio=1\.0 with"
    ):
        run_keras_tuner(url, "cxr-search", "random", 1, quiet=True)


@pytest.mark.parametrize(
    ("flag", "name", "value", "what"),
    [
        ("--min-lung-focus-ratio", "min_lung_focus_ratio", 1.0, "measure lung focus"),
        ("--max-hidden-lungs-auc", "max_hidden_lungs_auc", 0.6, "hide the lungs"),
    ],
)
def test_data_without_lung_masks_needs_a_segmenter_for_the_constraint(
    flag: str, name: str, value: float, what: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from search.launch import main, parse_args, prepare

    data = make_synthetic_dataset(tmp_path / "data", SyntheticSpec(per_class=6, size=32, masks=False, seed=2))
    args = ["--trials", "1", "--data", str(data), *BASE, flag, str(value)]
    assert main(["--storage", f"sqlite:///{tmp_path / 'none.db'}", *args, "--lung-model", "none"]) == 1
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"error: `{name}` needs lung masks to {what}, but got {name}={value} on a dataset without any and "
        "--lung-model none; leave --lung-model at auto (the packaged segmenter), pass a segmenter file, or drop "
        "the constraint."
    )
    # The default, --lung-model auto: the packaged segmenter gives every image a mask.
    plan = prepare(parse_args(["--storage", f"sqlite:///{tmp_path / 'auto.db'}", *args]))
    assert getattr(plan.space.training, name) == value


# --- a real search: launch's worker processes and a worker started on its own ----------------

MINIMUM = 0.5  # a flat map scores 1.0 (32 px: a 1x1 feature map); a blank one is unmeasured
MAXIMUM = 0.75  # COVID AUC with the lungs hidden
HIDDEN_TEXT = f"COVID AUC with the lungs hidden between {1 - MAXIMUM:g} and {MAXIMUM:g}"
BOTH = f"lung focus / lung area >= {MINIMUM:g} and {HIDDEN_TEXT}"
EITHER = f"lung focus / lung area >= {MINIMUM:g} or {HIDDEN_TEXT}"


@pytest.fixture(scope="module")
def constrained(tiny: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """Three trials by launch (one worker process), then one by ``python -m search.worker`` alone."""
    workdir = tmp_path_factory.mktemp("constrained")
    flags = ["--min-lung-focus-ratio", str(MINIMUM), "--max-hidden-lungs-auc", str(MAXIMUM)]
    done = launch("--trials", "3", "--data", str(tiny), *BASE, *flags, cwd=workdir)
    assert done.returncode == 0, done.stderr[-3000:]
    url = f"sqlite:///{workdir / 'optuna.db'}"
    worker = run_module("search.worker", "--storage", url, "--study", "cxr-search", "--trials", "1", cwd=workdir)
    assert worker.returncode == 0, worker.stderr[-3000:]
    return workdir, done.stdout


def _check_constraints(url: str, numbers: list[int]) -> list[TrialRow]:
    trials = {t.number: t for t in optuna.load_study(study_name="cxr-search", storage=url).get_trials()}
    rows = {r.trial_number: r for r in ResultStore(url).trials("cxr-search")}
    checked = []
    for number in numbers:
        trial, row = trials[number], rows[number]
        if trial.state == TrialState.COMPLETE:
            assert trial.constraints == {
                FOCUS_CONSTRAINT: focus_constraint(row.lung_focus_ratio, MINIMUM),
                HIDDEN_CONSTRAINT: hidden_constraint(row.hidden_lungs_auc, MAXIMUM),
            }
            assert trial.user_attrs["lung_focus_ratio"] == row.lung_focus_ratio
            assert trial.user_attrs["hidden_lungs_auc"] == row.hidden_lungs_auc
            checked.append(row)
        else:
            assert trial.constraints == {}, "a pruned or failed trial has no focus and no constraint value"
    return checked


@pytest.mark.slow
def test_a_constrained_search_stores_the_constraint_and_ranks_feasible_first(constrained: tuple[Path, str]) -> None:
    from leaderboard import data as D
    from search._records import find_trial

    workdir, stdout = constrained
    url = f"sqlite:///{workdir / 'optuna.db'}"
    completed = _check_constraints(url, [0, 1, 2])
    assert completed, "at least one trial completes"
    assert all(r.hidden_lungs_auc is not None for r in completed), "the tiny set has lung masks: measured"
    feasible = sum(
        meets_focus(r.lung_focus_ratio, MINIMUM) and meets_hidden(r.hidden_lungs_auc, MAXIMUM) for r in completed
    )
    assert f"Feasible ({BOTH}): {feasible} of {len(completed)} completed trial(s)" in stdout
    assert f"those that miss {EITHER} (or are unmeasured) after all others" in stdout
    # Every reader of the study's ranking puts the feasible trials first: the store, the
    # leaderboard's table and the default winner.
    _, info = load_study(make_storage(url), "cxr-search")
    ranking = info.ranking
    assert (ranking.min_lung_focus_ratio, ranking.max_hidden_lungs_auc) == (MINIMUM, MAXIMUM)
    ranked = ResultStore(url).ranked("cxr-search", ranking=ranking)
    flags = [ranking.feasible(r) for r in ranked]
    assert flags == sorted(flags, reverse=True)
    engine = D.read_only_engine(url)
    rule = D.study_ranking(engine, "cxr-search")
    assert rule == ranking
    frame, _ = D.ranking(engine, "cxr-search", rule=rule)
    assert list(frame["trial_number"]) == [r.trial_number for r in ranked]
    assert list(~frame["infeasible"]) == flags
    top = find_trial(ResultStore(url), "cxr-search", None, ranking=ranking)
    assert ranking.feasible(top) == any(flags)


@pytest.mark.slow
def test_a_worker_started_on_its_own_applies_the_studys_constraint(constrained: tuple[Path, str]) -> None:
    workdir, _ = constrained
    url = f"sqlite:///{workdir / 'optuna.db'}"
    trials = optuna.load_study(study_name="cxr-search", storage=url).get_trials()
    assert len(trials) == 4
    assert trials[3].state == TrialState.COMPLETE, "no pruning before four completed trials"
    _check_constraints(url, [3])

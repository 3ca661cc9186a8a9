"""The leaderboard under a study's constraints (lung focus, COVID AUC with the lungs hidden): its
ranking, table, rule text and the sensitivity-vs-focus chart (threshold line, infeasible trials
marked; Optuna's own front for a multi-objective study)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import optuna
import pandas as pd
import pytest
from sqlalchemy import Engine

from leaderboard import charts
from leaderboard import data as D
from search._study import StudyInfo, create_study, make_storage
from search.space import TrialConfig, load_space
from search.store import ResultStore, config_row

CONFIG = TrialConfig("MobileNetV2", 1.0, 64, 0.1, 1e-3, 0.0, "three")
# trial: (COVID sensitivity at the target, lung focus / lung area); None: unmeasured.
FIGURES: list[tuple[float, float | None]] = [(0.99, 0.9), (0.8, 1.3), (0.97, None), (0.85, 1.2), (0.7, 1.19)]
HIDDEN: list[float | None] = [0.85, 0.55, 0.5, None, 0.62]  # their COVID AUC with the lungs hidden


def _study(url: str, name: str, minimum: float | None, maximum: float | None = None) -> None:
    """A study created as launch creates one (its space stored in Optuna), and its results rows."""
    space = load_space()
    training = replace(space.training, min_lung_focus_ratio=minimum, max_hidden_lungs_auc=maximum)
    space = replace(space, training=training)
    store = ResultStore(url)
    store.create_schema()
    create_study(make_storage(url), name, StudyInfo(space.check(), "/nowhere", "0" * 16, "none", 0, 0, "/tmp", "/tmp"))
    for number, (sensitivity, ratio) in enumerate(FIGURES):
        row = config_row(name, number, CONFIG, "COMPLETE")
        row.op_sensitivity, row.covid_sensitivity, row.covid_specificity = sensitivity, sensitivity, 0.9
        row.lung_focus_ratio, row.lung_focus = ratio, None if ratio is None else ratio / 3
        row.hidden_lungs_auc = HIDDEN[number]
        store.record(row)
    pruned = config_row(name, len(FIGURES), CONFIG, "PRUNED")
    store.record(pruned)


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> str:
    path: Path = tmp_path_factory.mktemp("constraint") / "optuna.db"
    url = f"sqlite:///{path}"
    _study(url, "constrained", 1.2)
    _study(url, "free", None)
    _study(url, "by-lungs", None, 0.6)
    return url


@pytest.fixture(scope="module")
def engine(url: str) -> Engine:
    return D.read_only_engine(url)


def test_the_studys_ranking_carries_its_constraint(engine: Engine) -> None:
    assert D.study_ranking(engine, "constrained").min_lung_focus_ratio == 1.2
    assert D.study_ranking(engine, "free").min_lung_focus_ratio is None


def test_the_first_row_is_feasible_and_infeasible_rows_are_marked(engine: Engine) -> None:
    rule = D.study_ranking(engine, "constrained")
    frame, total = D.ranking(engine, "constrained", rule=rule)
    assert total == 5 and list(frame["trial_number"]) == [3, 1, 0, 2, 4]
    assert list(frame["infeasible"]) == [False, False, True, True, True]
    assert "misses the study's constraint" not in D.top_line(frame)
    assert (
        "trials that miss lung focus / lung area >= 1.2 (or are unmeasured) rank after every trial that meets it"
        in (D.rule_text(rule))
    )
    free, _ = D.ranking(engine, "free", rule=D.study_ranking(engine, "free"))
    assert list(free["trial_number"]) == [0, 2, 3, 1, 4] and not free["infeasible"].any()
    assert "constraint" not in D.rule_text(D.study_ranking(engine, "free"))
    # Every pruned row is shown unmarked: it has no focus to judge.
    everything, _ = D.ranking(engine, "constrained", rule=rule, filters=D.Filters(states=()))
    assert not everything[everything["state"] == "PRUNED"]["infeasible"].any()


def test_an_infeasible_top_row_says_so(engine: Engine) -> None:
    frame, _ = D.ranking(engine, "constrained", rule=D.study_ranking(engine, "constrained"))
    top = frame[frame["infeasible"]].reset_index(drop=True)  # a page of infeasible trials only
    assert "— it misses the study's constraint, like every trial shown" in D.top_line(top)


def test_a_lungs_hidden_constraint_ranks_and_marks_like_the_focus_one(engine: Engine) -> None:
    rule = D.study_ranking(engine, "by-lungs")
    assert (rule.min_lung_focus_ratio, rule.max_hidden_lungs_auc) == (None, 0.6)
    frame, _ = D.ranking(engine, "by-lungs", rule=rule)
    assert list(frame["trial_number"]) == [2, 1, 0, 3, 4]
    assert list(frame["infeasible"]) == [False, False, True, True, True]
    assert "trials that miss COVID AUC with the lungs hidden between 0.4 and 0.6 (or are unmeasured)" in D.rule_text(
        rule
    )
    figure = charts.sensitivity_focus_figure(D.all_trials(engine, "by-lungs"), max_hidden_lungs_auc=0.6)
    assert figure.layout.yaxis.title.text == "lung focus" and not figure.layout.shapes, "no focus threshold to draw"
    marked = next(t for t in figure.data if t.name == "infeasible (AUC with the lungs hidden not between 0.4 and 0.6)")
    assert sorted(marked.customdata) == [0, 3, 4], "trial 3: unmeasured with the lungs hidden, so infeasible"


def test_the_chart_draws_the_threshold_and_marks_infeasible_trials(engine: Engine) -> None:
    frame = D.all_trials(engine, "constrained")
    figure = charts.sensitivity_focus_figure(frame, min_lung_focus_ratio=1.2)
    assert figure.layout.yaxis.title.text == "lung focus / lung area"
    assert [(s.type, s.y0, s.y1) for s in figure.layout.shapes] == [("line", 1.2, 1.2)]
    marked = next(t for t in figure.data if t.name == "infeasible (lung focus / lung area below 1.2)")
    assert sorted(marked.customdata) == [0, 4] and sorted(marked.y) == [0.9, 1.19]
    assert "1 unmeasured, not shown" in figure.layout.title.text
    plain = charts.sensitivity_focus_figure(frame)
    assert plain.layout.yaxis.title.text == "lung focus" and not plain.layout.shapes
    assert not any(str(t.name).startswith("infeasible") for t in plain.data)


def test_a_multi_objective_study_shows_optunas_own_front() -> None:
    study = optuna.create_study(directions=["maximize", "maximize"])
    for values in ([0.9, 0.3], [0.8, 0.5], [0.7, 0.2], [0.6, 0.6]):
        study.add_trial(optuna.trial.create_trial(values=values))
    front = charts.optuna_front(study)
    assert front == sorted(t.number for t in study.best_trials) == [0, 1, 3]
    assert charts.optuna_front(optuna.create_study()) is None, "a single objective has no front of Optuna's"
    frame = pd.DataFrame(
        {
            "trial_number": [0, 1, 2, 3],
            "engine": ["optuna"] * 4,
            "state": ["COMPLETE"] * 4,
            "backbone": ["MobileNetV2"] * 4,
            "scheme": ["three"] * 4,
            "freeze_depth": [1.0] * 4,
            "accuracy": [0.9] * 4,
            "op_sensitivity": [0.9, 0.8, 0.95, 0.6],  # trial 2 would be on this plane's own front
            "covid_sensitivity": [0.9, 0.8, 0.95, 0.6],
            "lung_focus": [0.3, 0.5, 0.6, 0.6],
            "lung_focus_ratio": [1.0, 1.5, 1.8, 1.8],
            "covid_auc": [0.9] * 4,
        }
    )
    figure = charts.sensitivity_focus_figure(frame, front_trials=front)
    line = next(t for t in figure.data if t.name == "Optuna's Pareto front (study.best_trials)")
    assert sorted(line.x) == [0.6, 0.8, 0.9]


def test_the_page_ranks_feasible_trials_first_and_draws_the_threshold(
    monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    import plotly.io
    from streamlit.testing.v1 import AppTest

    from tests.conftest import REPO

    monkeypatch.setenv("CXR_STORAGE", url)
    monkeypatch.setenv("CXR_ALLOW_EXPORT", "0")
    at = AppTest.from_file(str(REPO / "leaderboard" / "app.py"), default_timeout=60)
    at.query_params["study"] = "constrained"
    at.run()
    assert not at.exception
    assert any(m.value.startswith("**Top-ranked: trial 3 (") for m in at.markdown)
    assert any("rank after every trial that meets it" in c.value for c in at.caption)
    table = at.dataframe[0].value
    assert list(table["infeasible"]) == [False, False, True, True, True]
    at.multiselect[0].set_value(["loss"]).run()  # another rule chosen in the sidebar keeps the constraint
    assert any("Ranked by validation loss ↑ (unknown values last" in c.value and "1.2" in c.value for c in at.caption)
    figure = plotly.io.from_json(at.get("plotly_chart")[0].proto.spec)
    assert figure.layout.title.text.startswith("COVID sensitivity @ target vs lung focus / lung area; infeasible")
    assert [shape.y0 for shape in figure.layout.shapes] == [1.2]

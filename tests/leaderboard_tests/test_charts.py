"""leaderboard.charts: pure figures from the store's frames."""

from __future__ import annotations

from sqlalchemy import Engine

from leaderboard import charts
from leaderboard import data as D


def test_the_sensitivity_chart_plots_the_operating_point_against_lung_focus(study_db: str) -> None:
    engine: Engine = D.read_only_engine(study_db)
    figure = charts.sensitivity_focus_figure(D.all_trials(engine, "demo"))
    assert figure.layout.xaxis.title.text == "COVID sensitivity @ target"
    assert figure.layout.yaxis.title.text == "lung focus"
    front = next(t for t in figure.data if t.name == "Pareto front")
    assert list(front.x) == sorted(front.x) and len(front.x) >= 1


def test_without_lung_focus_the_chart_says_so_and_uses_covid_auc(study_db: str) -> None:
    figure = charts.sensitivity_focus_figure(D.all_trials(D.read_only_engine(study_db), "second"))
    assert figure.layout.yaxis.title.text == "COVID AUC"
    assert "(lung focus not measured yet)" in figure.layout.title.text


def test_a_large_study_draws_its_front_in_full_and_a_sample_of_the_rest() -> None:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    n = charts.SCATTER_MAX_POINTS + 1000
    frame = pd.DataFrame(
        {
            "trial_number": range(n), "engine": "optuna", "state": "COMPLETE", "backbone": "MobileNetV2",
            "scheme": "three", "freeze_depth": 1.0, "accuracy": 0.9, "op_sensitivity": rng.random(n),
            "covid_sensitivity": rng.random(n), "lung_focus": rng.random(n), "covid_auc": 0.9,
        }
    )  # fmt: skip
    figure = charts.sensitivity_focus_figure(frame)
    front = D.pareto_front(frame, "op_sensitivity", "lung_focus")
    assert figure.layout.title.text.endswith(
        f"({charts.SCATTER_MAX_POINTS:,} of {n:,} completed trials shown, the front in full)"
    )
    markers = [t for t in figure.data if t.name != "Pareto front"]
    assert sum(len(t.x) for t in markers) == charts.SCATTER_MAX_POINTS
    line = next(t for t in figure.data if t.name == "Pareto front")
    assert sorted(line.x) == sorted(frame.loc[front, "op_sensitivity"])

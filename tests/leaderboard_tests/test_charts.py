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

"""The Studies page (``/studies?studies=A,B``): two studies side by side, e.g. the full image
against lung_crop, or Optuna against KerasTuner (``NAME@ENGINE``: one engine's trials of a study).

Best-so-far curves over wall time and over trials, the distribution of COVID sensitivity and
lung focus over the completed trials, and both Pareto fronts on one chart.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from leaderboard import charts
from leaderboard import comparison as C
from leaderboard import data as D
from leaderboard.views import _board as B

FIGURES = ("op_sensitivity", "covid_sensitivity", "covid_auc", "lung_focus", "lung_focus_ratio", "balanced_accuracy")


def _groups(url: str, studies: tuple[str, ...]) -> list[C.StudyGroup]:
    """A study whole, and each engine's trials of it when it has trials of several engines."""
    groups = []
    for study in studies:
        groups.append(C.StudyGroup(study))
        engines = B.study_engines(url, study)
        if len(engines) > 1:
            groups.extend(C.StudyGroup(study, e) for e in engines)
    return groups


def _frame(url: str, group: C.StudyGroup) -> pd.DataFrame:
    frame = B.all_trials(url, group.study)
    return frame if group.engine is None else frame[frame["engine"] == group.engine]


def _pick(url: str, board: B.Board) -> list[C.StudyGroup] | None:
    groups = _groups(url, board.studies)
    if len(groups) < 2:
        st.info(
            "This database holds one study. Run a second search to compare with it, e.g. another input region "
            "(`--regions lung_crop`) or another engine (`--engine keras-tuner`), under "
            "another `--study` name; it appears here when its first trial is recorded."
        )
        return None
    wanted = st.query_params.get("studies")
    engines = {s: B.study_engines(url, s) for s in board.studies}
    keys = ("studies-a", "studies-b")
    if wanted is not None:
        try:
            linked = C.parse_groups(wanted, board.studies, engines)
        except ValueError as exc:
            st.error(B.escape(str(exc)))
        else:
            for key, group in zip(keys, linked, strict=True):
                if st.session_state.get(key) != group:
                    st.session_state[key] = group
    defaults = [C.StudyGroup(board.study), next(g for g in groups if g != C.StudyGroup(board.study))]
    for key, default in zip(keys, defaults, strict=True):
        if st.session_state.get(key) not in groups:
            st.session_state[key] = default

    def write() -> None:
        st.query_params["studies"] = ",".join(st.session_state[k].link for k in keys)

    left, right = st.columns(2)
    first = left.selectbox("Study", groups, key=keys[0], format_func=lambda g: g.label, on_change=write)
    second = right.selectbox("against", groups, key=keys[1], format_func=lambda g: g.label, on_change=write)
    write()
    if first == second:
        st.info("Choose two different studies (or two engines of one study) to compare.")
        return None
    return [first, second]


def render() -> None:
    board = B.board()
    if board is None:
        return
    url = board.url
    chosen = _pick(url, board)
    if chosen is None:
        return
    frames = {g.label: _frame(url, g) for g in chosen}
    measured = [f for f in FIGURES if all(frame[f].notna().any() for frame in frames.values())]
    if not measured:
        st.info("These studies have no completed trial with a measured figure in common yet.")
        return
    figure = st.selectbox("Figure", measured, format_func=lambda f: D.LABELS.get(f, f), key="studies-figure")
    summary = C.study_summary(frames, figure)
    st.dataframe(summary, key="studies-summary")
    st.plotly_chart(
        charts.best_so_far_figure({label: C.best_so_far(frame, figure) for label, frame in frames.items()}, figure),
        key="studies-best",
    )
    spread = [figure] + (["lung_focus"] if figure != "lung_focus" and "lung_focus" in measured else [])
    left, right = st.columns(2)
    with left:
        st.plotly_chart(charts.distribution_figure(frames, spread), key="studies-spread")
    with right:
        if "lung_focus" in measured and figure != "lung_focus":
            st.plotly_chart(charts.fronts_figure(frames, figure), key="studies-fronts")
        else:
            st.caption("Pareto fronts need lung focus measured in both studies.")


if __name__ == "__main__":
    render()

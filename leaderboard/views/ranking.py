"""The Ranking page (``/?study=S``): the ranked table of a study, its chart and the default export.

Tick rows of the table to open a trial or compare 2 to 4 of them.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import streamlit as st
from streamlit.elements.lib.column_types import ColumnConfig

from leaderboard import charts
from leaderboard import data as D
from leaderboard.comparison import COMPARE_MAX, COMPARE_MIN, trial_link
from leaderboard.views import _board as B
from leaderboard.views._export import export_ensemble
from search.store import Ranking

PAGE_SIZE = 50
CHARTS = {
    "sensitivity": "COVID sensitivity at the target vs lung focus (Pareto front)",
    "history": "Optimisation history",
    "importances": "Parameter importances",
    "parallel": "Parallel coordinates",
    "timeline": "Trial timeline (pruned and failed included)",
}


@dataclass(frozen=True)
class _View:
    """What the sidebar chose."""

    study: str
    rule: Ranking
    filters: D.Filters
    every: int | None  # seconds between refreshes, None: no refresh


@st.cache_data(ttl=B.CACHE_TTL_S, show_spinner=False)
def _choices(url: str, study: str) -> dict[str, list[str]]:
    return D.filter_choices(B.engine(url), study)


@st.cache_data(ttl=B.CACHE_TTL_S, show_spinner="Ranking the study's trials…")
def _page(url: str, study: str, rule: Ranking, filters: D.Filters, page: int) -> tuple[pd.DataFrame, int]:
    return D.ranking(B.engine(url), study, rule=rule, filters=filters, page=page, page_size=PAGE_SIZE)


def _sidebar(url: str, study: str) -> _View:
    default = B.study_ranking(url, study)
    rule = st.sidebar.multiselect(
        "Rank by (in order)", list(D.RANKABLE), default=list(default.keys), format_func=lambda c: D.LABELS.get(c, c)
    )
    floor = st.sidebar.slider(
        "Minimum COVID specificity (argmax)",
        0.0,
        1.0,
        default.min_specificity,
        0.05,
        help="Trials below it rank after all others: a model that calls every X-ray COVID has argmax sensitivity 1.0.",
    )
    choices = _choices(url, study)
    filters = D.Filters(
        backbones=tuple(st.sidebar.multiselect("Backbone", choices["backbones"])),
        schemes=tuple(st.sidebar.multiselect("Scheme", choices["schemes"])),
        regions=tuple(
            st.sidebar.multiselect(
                "Input region", choices["regions"], help="What part of the X-ray the model sees (--regions)."
            )
        ),
        states=tuple(
            st.sidebar.multiselect(
                "State", choices["states"], default=[s for s in ("COMPLETE",) if s in choices["states"]]
            )
        ),
        engines=tuple(st.sidebar.multiselect("Engine", choices["engines"])),
    )
    live = st.sidebar.toggle("Refresh while workers run", value=True)
    # The study's constraints (if any) stay part of every rule chosen here.
    chosen = default.with_keys(rule or default.keys, floor)
    return _View(study, chosen, filters, 10 if live else None)


# Short headers and fixed widths, so the COVID figures fit a 1,500 px window without scrolling
# (each header's tooltip gives the full name).
_HEADERS = {
    "trial_number": "trial",
    "op_sensitivity": "COVID sens",
    "op_sensitivity_low": "CI low",
    "op_sensitivity_high": "CI high",
    "op_specificity": "COVID spec",
    "covid_threshold": "threshold",
    "covid_auc": "COVID AUC",
    "lung_focus": "lung focus",
    "lung_focus_ratio": "focus ratio",
    "hidden_lungs_auc": "AUC lungs hidden",
    "covid_sensitivity": "COVID sens (argmax)",
    "covid_sensitivity_low": "argmax CI low",
    "covid_sensitivity_high": "argmax CI high",
    "covid_specificity": "COVID spec (argmax)",
    "freeze_depth": "freeze",
}
_WIDTHS = {
    "rank": 44, "trial_number": 52, "review": 70, "backbone": 108, "scheme": 60, "input_region": 88,
    "op_sensitivity": 92, "op_sensitivity_low": 64, "op_sensitivity_high": 68, "op_specificity": 92,
    "covid_threshold": 74, "covid_auc": 84, "lung_focus": 80, "lung_focus_ratio": 84,
    "hidden_lungs_auc": 96,
}  # fmt: skip


def _number(column: str, number_format: str = "%.3f") -> ColumnConfig:
    return st.column_config.NumberColumn(
        _HEADERS.get(column, column), format=number_format, width=_WIDTHS.get(column), help=D.LABELS.get(column)
    )


_COLUMNS = {
    **{c: _number(c) for c in (*D.RANKABLE, *_HEADERS) if c != "trial_number"},
    "rank": st.column_config.NumberColumn("rank", format="%d", width=_WIDTHS["rank"]),
    "trial_number": st.column_config.NumberColumn("trial", format="%d", width=_WIDTHS["trial_number"]),
    "review": st.column_config.TextColumn(
        "review", width=_WIDTHS["review"], help="The latest reviewer's verdict: lungs, shortcut or unsure"
    ),
    "backbone": st.column_config.TextColumn("backbone", width=_WIDTHS["backbone"]),
    "scheme": st.column_config.TextColumn("scheme", width=_WIDTHS["scheme"]),
    "input_region": st.column_config.TextColumn(
        "region", width=_WIDTHS["input_region"], help="What part of the X-ray the model sees: full, lung_crop, ..."
    ),
    "covid_threshold": _number("covid_threshold", "%.4f"),
    "learning_rate": st.column_config.NumberColumn(format="%.2e"),
    "wall_time_s": st.column_config.NumberColumn("time (s)", format="%.0f"),
    "params": st.column_config.NumberColumn("parameters", format="%d"),
    "below_floor": st.column_config.CheckboxColumn("below specificity floor"),
    "infeasible": st.column_config.CheckboxColumn("misses the study's constraint"),
}
# Who and which first, then the COVID figures at the target with their interval, then the rest.
_FIRST = (
    "rank", "trial_number", "review", "backbone", "scheme", "input_region", "op_sensitivity", "op_sensitivity_low",
    "op_sensitivity_high", "op_specificity", "covid_threshold", "covid_auc", "lung_focus", "lung_focus_ratio",
    "hidden_lungs_auc",
)  # fmt: skip
_HIDDEN = ("reviewer",)


def _order(frame: pd.DataFrame) -> list[str]:
    first = [c for c in _FIRST if c in frame.columns]
    return first + [c for c in frame.columns if c not in first and c not in _HIDDEN]


def _board(url: str, view: _View) -> pd.DataFrame:
    pages = st.session_state.get("page", 1)
    frame, total = _page(url, view.study, view.rule, view.filters, pages - 1)
    verdicts, problem = B.verdicts(url, view.study)
    frame = D.with_verdicts(frame, verdicts)
    st.markdown(f"**{D.top_line(frame)}**")
    st.caption(D.rule_text(view.rule))
    if not frame.empty and frame["op_target"].notna().any():
        st.caption(
            f"COVID sens and spec are at the target: each trial's COVID threshold is chosen on its validation "
            f"images for COVID {D.escape_markdown(frame['op_target'].dropna().iloc[0])}; CI: the 95% Wilson interval "
            "of the sensitivity; focus ratio: lung focus / lung area."
        )
    if not frame.empty and frame["lung_focus"].isna().all():
        st.caption("Lung focus is not measured for these trials yet; it ranks as unknown.")
    if frame.empty:
        st.info(
            "No trial matches the filters yet. Trials appear here as workers record them (this page refreshes "
            "every 10 s while 'Refresh while workers run' is on); widen the State filter to see pruned and "
            "failed trials."
        )
    if problem:
        st.caption(f"Reviews cannot be shown: {D.escape_markdown(problem)}")
    shown = frame if view.rule.constrained else frame.drop(columns="infeasible")
    shown = shown.assign(review=shown["review"].fillna(""))
    event = st.dataframe(
        shown,
        hide_index=True,
        column_config=_COLUMNS,
        column_order=_order(shown),
        on_select="rerun",
        selection_mode="multi-row",
        key=f"table-{view.study}",
    )
    _open(view.study, frame, list(event.selection.rows) if event is not None else [])
    st.download_button(
        "Download the ranked table (.csv, every page)",
        data=lambda: D.ranking_csv(
            B.engine(url), view.study, rule=view.rule, filters=view.filters, verdicts=B.verdicts(url, view.study)[0]
        ),
        file_name=f"{view.study}-ranking.csv",
        mime="text/csv",
        on_click="ignore",  # made when clicked; no rerun of the page
    )
    last = max(1, -(-total // PAGE_SIZE))
    st.number_input(f"Page (of {last}; {total} trials)", min_value=1, max_value=last, key="page")
    return frame


def _open(study: str, frame: pd.DataFrame, rows: list[int]) -> None:
    """Links from the ticked rows: one trial's page, or the comparison of 2 to 4."""
    picked = [(str(frame.iloc[i]["engine"]), int(frame.iloc[i]["trial_number"])) for i in rows if i < len(frame)]
    links = ",".join(trial_link(t) for t in picked)
    if len(picked) == 1:
        B.link("trial", f"Open trial {B.trial_label(picked[0])}", study=study, trial=links)
    elif COMPARE_MIN <= len(picked) <= COMPARE_MAX:
        names = ", ".join(B.trial_label(t) for t in picked)
        B.link("compare", f"Compare trials {names} side by side", study=study, trials=links)
    elif picked:
        st.caption(f"Compare takes {COMPARE_MIN} to {COMPARE_MAX} trials; {len(picked)} are ticked.")
    elif not frame.empty:
        top = (str(frame.iloc[0]["engine"]), int(frame.iloc[0]["trial_number"]))
        left, right = st.columns([1, 3])
        with left:
            B.link("trial", f"Open the top-ranked trial ({B.trial_label(top)})", study=study, trial=trial_link(top))
        with right:
            st.caption("Tick a row to open its trial, or 2 to 4 rows to compare them side by side.")


def _front(url: str, study: str) -> list[int] | None:
    """Optuna's own Pareto front of a multi-objective study; None otherwise, or where the database
    holds results without Optuna's study."""
    try:
        return charts.optuna_front(B.optuna_study(url, study))
    except Exception:  # a results-only database, or Optuna's tables unreadable: the plane's own front
        return None


def _charts(url: str, study: str, rule: Ranking) -> None:
    kind: str = st.selectbox("Chart", list(CHARTS), format_func=lambda k: CHARTS[k])
    try:
        if kind == "sensitivity":
            frame, front = B.all_trials(url, study), _front(url, study)
            figure = charts.sensitivity_focus_figure(
                frame,
                min_lung_focus_ratio=rule.min_lung_focus_ratio,
                max_hidden_lungs_auc=rule.max_hidden_lungs_auc,
                front_trials=front,
            )
            st.plotly_chart(figure)
        else:
            st.plotly_chart(charts.optuna_figure(B.optuna_study(url, study), kind))
    except (ValueError, RuntimeError) as exc:  # e.g. importances before two trials completed
        st.info(f"This chart needs more finished trials ({exc}).")


def render() -> None:
    board = B.board()
    if board is None:
        return
    url, study = board.url, board.study
    if st.query_params.get("trial"):  # an address from before the pages: ?study=S&trial=N opens the trial
        st.switch_page(B.PAGES["trial"], query_params={"study": study, "trial": st.query_params["trial"]})
    view = _sidebar(url, study)

    @st.fragment(run_every=view.every)
    def live() -> None:
        _board(url, view)
        _charts(url, view.study, view.rule)
        export_ensemble(url, view.study)

    live()


if __name__ == "__main__":
    render()

"""The leaderboard page: ``streamlit run leaderboard/app.py [-- --storage URL]``.

A thin page over :mod:`leaderboard.data` and :mod:`leaderboard.charts`; the database is opened
read-only.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import optuna
import pandas as pd
import streamlit as st

from leaderboard import charts
from leaderboard import data as D
from leaderboard.exports import export_allowed, run_export
from search import SearchError, settings
from search.artifacts import read_artifact
from search.store import Ranking, mask_url

PAGE_SIZE = 50
CACHE_TTL_S = 5
CHARTS = {
    "sensitivity": "COVID sensitivity at the target vs lung focus (Pareto front)",
    "history": "Optimisation history",
    "importances": "Parameter importances",
    "parallel": "Parallel coordinates",
    "timeline": "Trial timeline (pruned and failed included)",
}


def storage_url() -> str:
    """``-- --storage URL`` after ``streamlit run``, else $CXR_STORAGE, else the embedded default."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--storage")
    known, _ = parser.parse_known_args(sys.argv[1:])
    return known.storage or settings().storage


@st.cache_resource
def _engine(url: str):  # type: ignore[no-untyped-def]
    return D.read_only_engine(url)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def _studies(url: str) -> list[str]:
    return D.studies(_engine(url))


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def _choices(url: str, study: str) -> dict[str, list[str]]:
    return D.filter_choices(_engine(url), study)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def _page(url: str, study: str, rule: Ranking, filters: D.Filters, page: int) -> tuple[pd.DataFrame, int]:
    return D.ranking(_engine(url), study, rule=rule, filters=filters, page=page, page_size=PAGE_SIZE)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def _study_ranking(url: str, study: str) -> Ranking:
    return D.study_ranking(_engine(url), study)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def _all(url: str, study: str) -> pd.DataFrame:
    return D.all_trials(_engine(url), study)


@st.cache_resource(ttl=CACHE_TTL_S)
def _optuna_study(url: str, study: str) -> optuna.Study:
    ro_url, engine_kwargs = D.read_only_url(url)  # Optuna's own engine, read-only like the page's
    storage = optuna.storages.RDBStorage(
        ro_url,
        engine_kwargs=engine_kwargs,
        skip_table_creation=True,
        skip_compatibility_check=True,
    )
    return optuna.load_study(study_name=study, storage=storage)


@dataclass(frozen=True)
class _View:
    """What the sidebar chose."""

    study: str
    rule: Ranking
    filters: D.Filters
    every: int | None  # seconds between refreshes, None: no refresh


def _sidebar(url: str) -> _View | None:
    st.sidebar.caption(f"Database: `{mask_url(url)}` (read-only)")
    try:
        names = _studies(url)
    except Exception as exc:  # an unreachable or foreign database: say so, do not crash the page
        st.error(
            f"The results database must be reachable and hold cxr-search results, but {mask_url(url)} does not ({exc})."
        )
        return None
    if not names:
        st.info("No trials yet. Start a search with `python -m search.launch --trials 20 --data PATH`.")
        return None
    wanted = st.query_params.get("study")  # deep links: ?study=NAME
    study = st.sidebar.selectbox("Study", names, index=names.index(wanted) if wanted in names else 0)
    st.query_params["study"] = study
    default = _study_ranking(url, study)
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
        states=tuple(
            st.sidebar.multiselect(
                "State", choices["states"], default=[s for s in ("COMPLETE",) if s in choices["states"]]
            )
        ),
        engines=tuple(st.sidebar.multiselect("Engine", choices["engines"])),
    )
    live = st.sidebar.toggle("Refresh while workers run", value=True)
    # The study's lung-focus constraint (if any) stays part of every rule chosen here.
    chosen = Ranking(tuple(rule or default.keys), floor, default.min_lung_focus_ratio)
    return _View(study, chosen, filters, 10 if live else None)


# Short headers for the COVID figures, so they fit a 1,500 px window without scrolling.
_HEADERS = {
    "trial_number": "trial",
    "op_sensitivity": "COVID sens @ target",
    "op_sensitivity_low": "95% CI low",
    "op_sensitivity_high": "95% CI high",
    "op_specificity": "COVID spec @ target",
    "covid_threshold": "threshold",
    "covid_auc": "COVID AUC",
    "lung_focus": "lung focus",
    "lung_focus_ratio": "focus / lung area",
    "covid_sensitivity": "COVID sens (argmax)",
    "covid_sensitivity_low": "argmax CI low",
    "covid_sensitivity_high": "argmax CI high",
    "covid_specificity": "COVID spec (argmax)",
    "freeze_depth": "freeze",
}
_COLUMNS = {
    **{c: st.column_config.NumberColumn(_HEADERS.get(c), format="%.3f") for c in D.RANKABLE},
    **{c: st.column_config.NumberColumn(h, format="%.3f") for c, h in _HEADERS.items() if c not in D.RANKABLE},
    "trial_number": st.column_config.NumberColumn("trial", format="%d"),
    "covid_threshold": st.column_config.NumberColumn("threshold", format="%.4f"),
    "learning_rate": st.column_config.NumberColumn(format="%.2e"),
    "wall_time_s": st.column_config.NumberColumn("time (s)", format="%.0f"),
    "params": st.column_config.NumberColumn("parameters", format="%d"),
    "below_floor": st.column_config.CheckboxColumn("below specificity floor"),
    "infeasible": st.column_config.CheckboxColumn("below lung-focus constraint"),
}


def _board(url: str, view: _View) -> pd.DataFrame:
    pages = st.session_state.get("page", 1)
    frame, total = _page(url, view.study, view.rule, view.filters, pages - 1)
    st.markdown(f"**{D.top_line(frame)}**")
    st.caption(D.rule_text(view.rule))
    if not frame.empty and frame["op_target"].notna().any():
        st.caption(
            f"@ target: each trial's COVID threshold is chosen on its validation images for COVID "
            f"{D.escape_markdown(frame['op_target'].dropna().iloc[0])}; the bounds are 95% Wilson intervals."
        )
    if not frame.empty and frame["lung_focus"].isna().all():
        st.caption("Lung focus is not measured for these trials yet; it ranks as unknown.")
    st.dataframe(
        frame if view.rule.min_lung_focus_ratio is not None else frame.drop(columns="infeasible"),
        hide_index=True,
        column_config=_COLUMNS,
    )
    st.download_button(
        "Download the ranked table (.csv, every page)",
        data=lambda: D.ranking_csv(_engine(url), view.study, rule=view.rule, filters=view.filters),
        file_name=f"{view.study}-ranking.csv",
        mime="text/csv",
        on_click="ignore",  # made when clicked; no rerun of the page
    )
    last = max(1, -(-total // PAGE_SIZE))
    st.number_input(f"Page (of {last}; {total} trials)", min_value=1, max_value=last, key="page")
    return frame


def _front(url: str, study: str) -> list[int] | None:
    """Optuna's own Pareto front of a multi-objective study; None otherwise, or where the database
    holds results without Optuna's study."""
    try:
        return charts.optuna_front(_optuna_study(url, study))
    except Exception:  # a results-only database, or Optuna's tables unreadable: the plane's own front
        return None


def _charts(url: str, study: str, rule: Ranking) -> None:
    kind: str = st.selectbox("Chart", list(CHARTS), format_func=lambda k: CHARTS[k])
    try:
        if kind == "sensitivity":
            figure = charts.sensitivity_focus_figure(
                _all(url, study), min_lung_focus_ratio=rule.min_lung_focus_ratio, front_trials=_front(url, study)
            )
            st.plotly_chart(figure)
        else:
            st.plotly_chart(charts.optuna_figure(_optuna_study(url, study), kind))
    except (ValueError, RuntimeError) as exc:  # e.g. importances before two trials completed
        st.info(f"This chart needs more finished trials ({exc}).")


def _trial_label(trial: tuple[str, int]) -> str:
    engine, number = trial
    return f"{number}" if engine == "optuna" else f"{number} ({engine})"


def _trial_link(trial: tuple[str, int]) -> str:
    engine, number = trial
    return str(number) if engine == "optuna" else f"{engine}:{number}"


def _trial_page(url: str, study: str, top: pd.DataFrame) -> None:
    st.subheader("Trial")
    rows = _all(url, study)
    # Both engines number their trials from 0: a trial is (engine, number).
    trials = list(zip(rows["engine"].astype(str), rows["trial_number"].astype(int), strict=True))
    if not trials:
        return
    # Deep links: ?study=S&trial=N (or trial=keras-tuner:N) opens that trial; else the top-ranked one.
    linked = next((t for t in trials if _trial_link(t) == st.query_params.get("trial")), None)
    top_trial = (str(top.iloc[0]["engine"]), int(top.iloc[0]["trial_number"])) if not top.empty else trials[0]
    default = linked or top_trial
    engine, number = st.selectbox(
        "Trial", trials, index=trials.index(default) if default in trials else 0, format_func=_trial_label
    )
    st.query_params["trial"] = _trial_link((engine, number))
    detail = D.trial_detail(_engine(url), study, number, engine)
    if detail is None:
        st.warning(f"Trial {_trial_label((engine, number))} has no stored result.")
        return
    heading = f"**Trial {_trial_label((engine, detail.trial_number))}** — {D.escape_markdown(detail.state)}"
    st.markdown(heading + (f": {D.escape_markdown(detail.error)}" if detail.error else ""))
    for problem in detail.problems:
        st.warning(D.escape_markdown(problem))
    left, right = st.columns(2)
    with left:
        st.dataframe(D.config_table(detail.config), hide_index=True)
        st.dataframe(detail.by_split)
        if len(detail.by_split.columns) > 1:
            st.caption(
                "Validation chose the trial and its COVID threshold; the test split and external datasets are "
                "measured once, at that threshold, and never used to rank."
            )
        for note in detail.external_notes:
            st.caption(D.escape_markdown(note))
        if not detail.per_class.empty:
            st.dataframe(detail.per_class)
        if not detail.folds.empty:
            st.caption("Cross-validated: each figure's mean and spread over the folds.")
            st.dataframe(detail.folds)
    with right:
        try:
            if not detail.epochs.empty:
                st.plotly_chart(charts.learning_curve_figure(detail.epochs, detail.pruned_at_epoch))
            if detail.confusion is not None:
                st.plotly_chart(charts.confusion_figure(detail.confusion, detail.class_names))
            if detail.roc is not None:
                st.plotly_chart(charts.roc_figure(*detail.roc, detail.metrics.get("roc_auc")))
        except (ValueError, TypeError, IndexError) as exc:  # stored values that do not fit a chart
            st.warning(D.escape_markdown(f"A chart of this trial could not be drawn from its stored values ({exc})."))
    _artifacts(url, study, detail)


def _artifacts(url: str, study: str, detail: D.TrialDetail) -> None:
    location = D.study_artifacts(_engine(url), study)
    overlays = [a for a in detail.artifacts if a["kind"] == "gradcam"]
    if overlays and location is not None:
        images, captions, problems = [], [], []
        for overlay in overlays:
            try:
                images.append(read_artifact(location, str(overlay["artifact_id"])))
                captions.append(str(overlay["filename"]))
            except (SearchError, OSError) as exc:  # ids and folder come from the database: never trusted
                problems.append(str(exc))
        if images:
            st.image(images, caption=captions, width=200)
        for problem in problems[:3]:
            st.warning(D.escape_markdown(problem))
    else:
        st.caption("No Grad-CAM overlays stored for this trial.")
    models = [a for a in detail.artifacts if a["kind"] == "model"]
    if models and detail.state == "COMPLETE":
        _export(url, study, detail.trial_number)
    else:
        st.caption("No saved model for this trial (models are kept for trials that entered the top at the time).")


def _export(url: str, study: str, trial: int) -> None:
    _export_button(url, study, ["--trial", str(trial)], f"Export trial {trial} (evaluates it once on the test split)")


def _export_ensemble(url: str, study: str) -> None:
    st.subheader("Export")
    st.caption(
        "The default export: greedy ensemble selection (Caruana et al. 2004) on the stored validation "
        "probabilities of the top trials with a saved model, one averaged model, a COVID threshold chosen on "
        "validation; measured once on the test split."
    )
    if not _allowed():
        return
    pool = int(st.number_input("Candidates (top trials with a saved model)", 1, 50, 10, key=f"pool-{study}"))
    _export_button(url, study, ["--ensemble", str(pool)], f"Export the ensemble of the top {pool}")


def _export_button(url: str, study: str, choice: list[str], label: str) -> None:
    """Package with ``search.export`` in a child process: one at a time per model, time-limited, kept on disk."""
    if not _allowed():
        st.caption(
            "Export is off on this page: it evaluates the model once on the test split and writes that row to the "
            "results database. Start the leaderboard with --allow-export (and a database role that may write) "
            f"to offer it here, or run: python -m search.export --study {D.escape_markdown(study)} "
            f"{' '.join(choice)} --out DIR"
        )
        return
    key = f"export-{study}-{'-'.join(choice)}"
    if st.button(label, key=f"button-{key}", help="Writes the test-split row of this model to the database."):
        with st.spinner("Exporting: test-split evaluation, Keras, SavedModel, TFLite, model card"):
            result = run_export(url, study, choice, D.study_version(_engine(url), study))
        if result.archive is None:
            st.error(D.escape_markdown(result.message or "The export failed."))
        else:
            st.session_state[key] = str(result.archive)  # a path: the archive stays on disk, not in the session
            if result.cached:
                st.caption("The study has not changed since this model was last exported: that archive is reused.")
    archive = Path(st.session_state.get(key, ""))
    if key in st.session_state and archive.is_file():
        st.download_button(
            "Download the export (.zip)", data=archive.read_bytes(), file_name=f"{study}-{'-'.join(choice)}.zip"
        )


def _allowed() -> bool:
    """The export button writes to the database: off unless the page was started to offer it."""
    return export_allowed(sys.argv[1:])


def main() -> None:
    st.set_page_config(page_title="cxr-search leaderboard", layout="wide")
    st.title("cxr-search leaderboard")
    st.caption("Research tool: validation-split results of a model search. Not a medical device; no clinical claim.")
    try:
        settings()  # a mistyped variable: one sentence on the page, not a traceback
    except SearchError as exc:
        st.error(D.escape_markdown(str(exc)))
        st.stop()
    url = storage_url()
    view = _sidebar(url)
    if view is None:
        return

    @st.fragment(run_every=view.every)
    def live() -> None:
        top = _board(url, view)
        _charts(url, view.study, view.rule)
        _trial_page(url, view.study, top)
        _export_ensemble(url, view.study)

    live()


main()

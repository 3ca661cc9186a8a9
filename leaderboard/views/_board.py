"""What every page of the leaderboard shares: the database, the study chosen in the sidebar, the
reviewer (if any), cached reads, and the pages' addresses.

The database is opened read-only; a writable connection exists only on a page started with
``--reviewer NAME``, and only for recording verdicts (:func:`review_writer`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import optuna
import pandas as pd
import streamlit as st

from leaderboard import data as D
from leaderboard import mistakes as M
from leaderboard import review as R
from leaderboard.comparison import Trial, trial_label, trial_link
from search import SearchError, settings
from search.artifacts import read_artifact
from search.store import Ranking

__all__ = [
    "CACHE_TTL_S",
    "PAGES",
    "VERDICT_WORDS",
    "Board",
    "all_trials",
    "artifact_location",
    "board",
    "detail",
    "engine",
    "escape",
    "history",
    "link",
    "mistakes",
    "optuna_study",
    "overlays",
    "review_writer",
    "reviewer_name",
    "set_board",
    "storage_url",
    "studies",
    "study_engines",
    "study_ranking",
    "sync_param",
    "top_trials",
    "trial_keys",
    "trial_label",
    "trial_link",
    "verdict_of",
    "verdict_text",
    "verdicts",
]

CACHE_TTL_S = 5
# The pages' scripts, relative to leaderboard/app.py; each page's address is its url_path.
PAGES = {
    "ranking": "views/ranking.py",
    "trial": "views/trial.py",
    "compare": "views/compare.py",
    "studies": "views/studies.py",
}
VERDICT_WORDS = {"lungs": "looks at the lungs", "shortcut": "reads a shortcut", "unsure": "unsure"}

escape = D.escape_markdown


def storage_url() -> str:
    """``-- --storage URL`` after ``streamlit run``, else $CXR_STORAGE, else the embedded default."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--storage")
    known, _ = parser.parse_known_args(sys.argv[1:])
    return known.storage or settings().storage


def reviewer_name() -> str | None:
    """The reviewer the page was started for (``--reviewer NAME``), or None: a read-only page.
    A bad name is a one-sentence :class:`search.SearchError`."""
    return R.reviewer_from(sys.argv[1:])


@dataclass(frozen=True)
class Board:
    """What the entry page resolved for the page it runs."""

    url: str
    study: str
    studies: tuple[str, ...]
    reviewer: str | None


_BOARD = "_cxr_board"


def set_board(value: Board | None) -> None:
    st.session_state[_BOARD] = value


def board() -> Board | None:
    """The database and study of this run (None: the entry page has said why there is none)."""
    value = st.session_state.get(_BOARD)
    return value if isinstance(value, Board) else None


def link(page: str, label: str, **params: str) -> None:
    """A link to one of :data:`PAGES` with its address's parameters."""
    st.page_link(PAGES[page], label=label, query_params=params)


def sync_param(name: str, key: str, value: Callable[[Any], str | None]) -> Callable[[], None]:
    """An ``on_change`` callback that writes widget ``key``'s value to the address's ``name``
    parameter (``value`` turns the widget's value into the parameter, None removes it)."""

    def callback() -> None:
        text = value(st.session_state[key])
        if text is None:
            st.query_params.pop(name, None)
        else:
            st.query_params[name] = text

    return callback


# Cached reads ---------------------------------------------------------------------------------


@st.cache_resource
def engine(url: str):  # type: ignore[no-untyped-def]
    return D.read_only_engine(url)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def studies(url: str) -> list[str]:
    return D.studies(engine(url))


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def schema_problem(url: str) -> str | None:
    """Why the page cannot read this results database (an older schema: how to upgrade), or None."""
    from search.store import ResultStore

    try:
        ResultStore(url, engine=engine(url)).check_schema()
    except SearchError as exc:
        return str(exc)
    return None


@st.cache_data(ttl=CACHE_TTL_S, show_spinner="Reading the study's trials from the database…")
def all_trials(url: str, study: str) -> pd.DataFrame:
    return D.all_trials(engine(url), study)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def study_engines(url: str, study: str) -> list[str]:
    return D.filter_choices(engine(url), study)["engines"]


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def trial_keys(url: str, study: str) -> list[Trial]:
    """Every trial of the study with stored results, as (engine, number), in trial order."""
    return D.trial_keys(engine(url), study)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def study_ranking(url: str, study: str) -> Ranking:
    return D.study_ranking(engine(url), study)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def top_trials(url: str, study: str, n: int) -> list[Trial]:
    """The study's ``n`` top-ranked completed trials under its own rule."""
    frame, _ = D.ranking(engine(url), study, rule=study_ranking(url, study), page_size=n)
    return list(zip(frame["engine"].astype(str), frame["trial_number"].astype(int), strict=True))


@st.cache_data(ttl=CACHE_TTL_S, show_spinner="Reading the trial's results…")
def detail(url: str, study: str, trial: Trial) -> D.TrialDetail | None:
    engine_name, number = trial
    return D.trial_detail(engine(url), study, number, engine_name)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def verdicts(url: str, study: str) -> tuple[pd.DataFrame, str | None]:
    """Each reviewed trial's latest verdict, and why there are none when they cannot be read."""
    try:
        return R.verdicts_frame(engine(url), study), None
    except SearchError as exc:  # e.g. a database from before reviews: say so, keep the page
        return pd.DataFrame(columns=list(R.COLUMNS)), str(exc)


def verdict_of(url: str, study: str, trial: Trial) -> dict[str, Any] | None:
    frame, _ = verdicts(url, study)
    rows = frame[(frame["engine"] == trial[0]) & (frame["trial"] == trial[1])]
    return None if rows.empty else dict(rows.iloc[-1])


def verdict_text(review: dict[str, Any] | None) -> str:
    """``reads a shortcut — Dr A, 2026-12-01 07:00 UTC: NOTE`` (Markdown, escaped), or ``not reviewed``."""
    if review is None:
        return "not reviewed"
    at = pd.Timestamp(review["at"]).strftime("%Y-%m-%d %H:%M UTC")
    note = " ".join(str(review.get("note") or "").split())
    words = VERDICT_WORDS.get(str(review["verdict"]), str(review["verdict"]))
    return escape(f"{words} — {review['reviewer']}, {at}" + (f": {note}" if note else ""))


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def history(url: str, study: str, trial: Trial) -> pd.DataFrame:
    return R.history_frame(engine(url), study, trial[1], trial[0])


@st.cache_resource
def review_writer(url: str, reviewer: str) -> R.ReviewWriter:
    """The page's one writable connection, made only for a page started with ``--reviewer NAME``."""
    return R.ReviewWriter(url, reviewer)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def artifact_location(url: str, study: str) -> str | None:
    return D.study_artifacts(engine(url), study)


@st.cache_data(ttl=600, show_spinner=False, max_entries=512)
def _artifact(location: str, artifact_id: str) -> bytes:
    return read_artifact(location, artifact_id)  # artifacts are written once: cached longer


def overlays(url: str, study: str, artifact_ids: list[str]) -> tuple[list[bytes | None], list[str]]:
    """The PNGs of ``artifact_ids`` (None where one cannot be read) and one sentence per problem.
    Ids and folder come from the database and are never trusted (:func:`read_artifact`)."""
    location = artifact_location(url, study)
    if location is None:
        return [None] * len(artifact_ids), ["The study names no artifact location, so its overlays cannot be shown."]
    images: list[bytes | None] = []
    problems: list[str] = []
    for artifact_id in artifact_ids:
        try:
            images.append(_artifact(location, artifact_id))
        except (SearchError, OSError) as exc:
            images.append(None)
            problems.append(str(exc))
    return images, problems


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def mistakes(url: str, study: str, trial: Trial) -> tuple[pd.DataFrame, M.MistakeSummary | None]:
    engine_name, number = trial
    frame = M.mistakes_frame(engine(url), study, number, engine_name)
    return frame, M.mistake_summary(engine(url), study, number, engine_name)


@st.cache_resource(ttl=CACHE_TTL_S)
def optuna_study(url: str, study: str) -> optuna.Study:
    ro_url, engine_kwargs = D.read_only_url(url)  # Optuna's own engine, read-only like the page's
    storage = optuna.storages.RDBStorage(
        ro_url,
        engine_kwargs=engine_kwargs,
        skip_table_creation=True,
        skip_compatibility_check=True,
    )
    return optuna.load_study(study_name=study, storage=storage)

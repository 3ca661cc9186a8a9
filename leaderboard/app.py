"""The leaderboard: ``streamlit run leaderboard/app.py [-- --storage URL] [-- --reviewer NAME]``.

The entry page of a Streamlit multipage app (``st.navigation``): it resolves the database and
the study in the sidebar, then runs one of the pages in ``leaderboard/views/``, each with an
address a colleague can open:

- Ranking ``/?study=S``; Trial ``/trial?study=S&trial=N``; Compare ``/compare?study=S&trials=3,7,9``;
  Studies ``/studies?studies=A,B``.

The database is opened read-only; only a page started with ``--reviewer NAME`` gets a writable
connection, and only to record verdicts.
"""

from __future__ import annotations

import streamlit as st
from streamlit.navigation.page import StreamlitPage

from leaderboard import data as D
from leaderboard.views import _board as B
from search import SearchError, settings
from search.store import mask_url

_TITLES = {"ranking": "Ranking", "trial": "Trial", "compare": "Compare trials", "studies": "Studies side by side"}
_ICONS = {"ranking": ":material/leaderboard:", "trial": ":material/biotech:", "compare": ":material/compare:"}
_ICONS["studies"] = ":material/stacked_line_chart:"


def _pages() -> dict[str, StreamlitPage]:
    return {
        name: st.Page(
            path,
            title=_TITLES[name],
            icon=_ICONS[name],
            url_path=None if name == "ranking" else name,
            default=name == "ranking",
        )
        for name, path in B.PAGES.items()
    }


def _pick_study(names: list[str]) -> str:
    """The study of the address (``?study=S``) when it names one, else the one chosen before, else
    the most recently active; written back to the address."""
    wanted = st.query_params.get("study")
    if wanted in names and wanted != st.session_state.get("study"):
        st.session_state["study"] = wanted
    if st.session_state.get("study") not in names:
        st.session_state["study"] = names[0]
    study: str = st.sidebar.selectbox(
        "Study", names, key="study", on_change=B.sync_param("study", "study", lambda s: str(s))
    )
    st.query_params["study"] = study
    return study


def _resolve(url: str) -> B.Board | None:
    """The board of this run, or None after saying (once, on the page) why there is none."""
    try:
        reviewer = B.reviewer_name()
    except SearchError as exc:
        st.error(D.escape_markdown(str(exc)))
        return None
    mode = f"reviews recorded as **{D.escape_markdown(reviewer)}**" if reviewer else "read-only"
    st.sidebar.caption(f"Database: `{mask_url(url)}` ({mode})")
    try:
        names = B.studies(url)
    except Exception as exc:  # an unreachable or foreign database: say so, do not crash the page
        st.error(
            D.escape_markdown(
                f"The results database must be reachable and hold cxr-search results, but {mask_url(url)} does not "
                f"({exc})."
            )
        )
        return None
    if not names:
        st.info(
            "No trials yet. Start a search with `python -m search.launch --trials 20 --data PATH` (or join one with "
            "`python -m search.worker`); its study appears here when its first trial is recorded: reload this page."
        )
        return None
    problem = B.schema_problem(url)
    if problem is not None:  # an older schema: one sentence with the upgrade command, not a failed query
        st.error(D.escape_markdown(problem))
        return None
    return B.Board(url, _pick_study(names), tuple(names), reviewer)


def main() -> None:
    st.set_page_config(page_title="cxr-search leaderboard", layout="wide")
    pages = _pages()
    page = st.navigation(list(pages.values()))
    st.title(page.title)
    st.caption("Research tool: validation-split results of a model search. Not a medical device; no clinical claim.")
    try:
        settings()  # a mistyped variable: one sentence on the page, not a traceback
    except SearchError as exc:
        st.error(D.escape_markdown(str(exc)))
        st.stop()
    board = _resolve(B.storage_url())
    B.set_board(board)
    if board is not None:
        page.run()


# Streamlit runs this file as ``__main__``; a process that multiprocessing spawns from a parent
# which ran the page (Streamlit's AppTest leaves it as the parent's ``__main__``) imports it as
# ``__mp_main__`` and must not draw it.
if __name__ == "__main__":
    main()

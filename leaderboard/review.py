"""Reviewers' verdicts for the leaderboard, without Streamlit and without TensorFlow.

Reading is done through the leaderboard's read-only connection (:func:`leaderboard.data.read_only_engine`).
Writing needs a connection that may write, and the page makes one only when it was started
with a reviewer's name (``--reviewer NAME``): it creates a :class:`ReviewWriter` then, and
only then; :func:`record_verdict` refuses in one sentence without a name. A reviewer's name is
what the person who started the page says it is (the page has no login; see SECURITY.md):
it records who to ask, not proof of who clicked.

- :func:`verdicts_frame`: each reviewed trial's latest verdict (to join on the ranked table by
  ``engine`` and ``trial``);
- :func:`history_frame`: one trial's verdicts, oldest first;
- :func:`record_verdict` / :class:`ReviewWriter`: append a verdict (a newer one supersedes the
  older; history is kept). A trial whose latest verdict is ``shortcut`` is skipped by
  ``search.export``'s default winner and ensemble pool and ``search.evaluate``'s default trial.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import pandas as pd
from sqlalchemy import Engine

from leaderboard.data import read_only_engine
from search import SearchError
from search.store import VERDICTS, ResultStore, Review, check_reviewer

__all__ = [
    "COLUMNS",
    "VERDICTS",
    "ReviewWriter",
    "history_frame",
    "record_verdict",
    "reviewer_from",
    "verdicts_frame",
]

# The frames' columns: the trial (engine, number), the verdict, who, their note, and when (UTC).
COLUMNS = ("engine", "trial", "verdict", "reviewer", "note", "at")


@contextmanager
def _reading(source: str | Engine) -> Iterator[ResultStore]:
    """A store over ``source``: an engine the caller made (the page's cached one), or a URL opened
    read-only for this call. The schema is checked first, so an old database says how to upgrade."""
    if isinstance(source, Engine):
        store = ResultStore(str(source.url), engine=source)
        store.check_schema()
        yield store
        return
    engine = read_only_engine(source)
    try:
        store = ResultStore(source, engine=engine)
        store.check_schema()
        yield store
    finally:
        engine.dispose()


def _frame(reviews: Sequence[Review]) -> pd.DataFrame:
    rows = [(r.engine, r.trial_number, r.verdict, r.reviewer, r.note, r.created_at) for r in reviews]
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    frame["trial"] = frame["trial"].astype("int64")
    frame["at"] = pd.to_datetime(frame["at"], utc=True)
    return frame


def verdicts_frame(url: str | Engine, study: str) -> pd.DataFrame:
    """The latest verdict of every reviewed trial of ``study``: columns :data:`COLUMNS`
    (``at``: UTC timestamps), one row per ``(engine, trial)``, sorted by them; empty when no
    trial was reviewed. ``url`` may also be the page's own read-only engine."""
    with _reading(url) as store:
        latest = store.latest_verdicts(study)
    return _frame(sorted(latest.values(), key=lambda r: (r.engine, r.trial_number)))


def history_frame(url: str | Engine, study: str, trial: int, engine: str = "optuna") -> pd.DataFrame:
    """Every verdict on one trial, oldest first (the last row is the one that counts)."""
    with _reading(url) as store:
        return _frame(store.reviews(study, trial, engine=engine))


class ReviewWriter:
    """The one writable connection of a leaderboard page, for a named reviewer.

    The name is checked first (printable, at most 64 characters; one sentence otherwise), so no
    engine is ever made for a bad or missing one. Create it only when the page was started with
    ``--reviewer NAME`` (see :func:`reviewer_from`); keep one per page process
    (``st.cache_resource``) and :meth:`dispose` it with the page.
    """

    def __init__(self, url: str, reviewer: str) -> None:
        self.reviewer = check_reviewer(reviewer)
        self.store = ResultStore(url)  # writable: its own engine, never the page's read-only one

    def record(self, study: str, trial: int, verdict: str, note: str = "", engine: str = "optuna") -> Review:
        """Append this reviewer's verdict on one trial and return it (see :meth:`ResultStore.add_review`)."""
        return self.store.add_review(study, trial, reviewer=self.reviewer, verdict=verdict, note=note, engine=engine)

    def dispose(self) -> None:
        self.store.dispose()


def record_verdict(
    url: str, study: str, trial: int, engine: str, reviewer: str | None, verdict: str, note: str = ""
) -> Review:
    """Record one verdict through a writable connection made for this call only.

    ``reviewer`` is the name the page was started with (:func:`reviewer_from`); without one the
    verdict is refused in one sentence and no writable connection is made. A page that records
    often keeps a :class:`ReviewWriter` instead.
    """
    if reviewer is None or not str(reviewer).strip():
        raise SearchError(
            "A verdict must be recorded by a named reviewer (start the leaderboard with --reviewer NAME), but this "
            "page was started without one."
        )
    writer = ReviewWriter(url, reviewer)
    try:
        return writer.record(study, trial, verdict, note, engine)
    finally:
        writer.dispose()


def reviewer_from(argv: Sequence[str]) -> str | None:
    """``--reviewer NAME`` among the page's arguments (``streamlit run app.py -- --reviewer NAME``),
    checked; None when absent. A bad name is a one-sentence :class:`SearchError`."""
    found: str | None = None
    args = list(argv)
    for i, arg in enumerate(args):
        if arg == "--reviewer":
            if i + 1 == len(args):
                raise SearchError("`--reviewer` must be followed by a name, but got nothing after it.")
            found = args[i + 1]
        elif arg.startswith("--reviewer="):
            found = arg.removeprefix("--reviewer=")
    return None if found is None else check_reviewer(found)

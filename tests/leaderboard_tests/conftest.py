from __future__ import annotations

import shutil
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from leaderboard.synthetic import make_synthetic_study
from tests.conftest import REPO

WINNER = 17
APP = str(REPO / "leaderboard" / "app.py")
PAGES = ("ranking", "trial", "compare", "studies")


@pytest.fixture(scope="session")
def study_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A 200-trial study whose top-ranked trial is known (trial 17), with what a search stores for
    the trial page (Grad-CAM overlays, validation probabilities, misclassified images), and a
    30-trial study without lung focus or artifacts."""
    folder = tmp_path_factory.mktemp("leaderboard")
    url = f"sqlite:///{folder / 'optuna.db'}"
    assert make_synthetic_study(url, "demo", 200, seed=4, best=WINNER, artifacts=folder / "artifacts") == WINNER
    make_synthetic_study(url, "second", 30, seed=5, with_lung_focus=False)
    return url


@pytest.fixture
def writable_db(study_db: str, tmp_path: Path) -> str:
    """A copy of :func:`study_db` of the test's own, for tests that record reviews (the artifacts
    stay where they are: only read)."""
    copy = tmp_path / "optuna.db"
    shutil.copy(study_db.removeprefix("sqlite:///"), copy)
    return f"sqlite:///{copy}"


def open_page(
    monkeypatch: pytest.MonkeyPatch,
    url: str,
    page: str = "ranking",
    *,
    study: str = "demo",
    allow_export: bool = False,
    reviewer: str | None = None,
    query: Mapping[str, str] | None = None,
    **params: str,
) -> AppTest:
    """The leaderboard at ``/PAGE?study=STUDY&PARAMS`` (``query`` and ``params`` together) through
    Streamlit's AppTest (run once)."""
    params = {**(query or {}), **params}
    monkeypatch.setenv("CXR_STORAGE", url)
    monkeypatch.setenv("CXR_ALLOW_EXPORT", "1" if allow_export else "0")
    monkeypatch.setattr(sys, "argv", ["app.py", *(["--reviewer", reviewer] if reviewer is not None else [])])
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["study"] = study
    if page == "ranking":
        for name, value in params.items():
            at.query_params[name] = value
        return at.run()
    at.run()  # the entry page registers the pages first
    for name, value in params.items():
        at.query_params[name] = value
    return at.switch_page(f"views/{page}.py").run()


def unescaped(text: str) -> str:
    """A Markdown-escaped sentence from the page, as written."""
    return text.replace("\\", "")

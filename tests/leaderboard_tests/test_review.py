"""leaderboard.review: verdicts read through the page's read-only connection, written only by a
ReviewWriter made for a named reviewer."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from leaderboard import review as R
from leaderboard.data import read_only_engine
from search import SearchError
from search.space import TrialConfig
from search.store import ResultStore, config_row
from tests.conftest import REPO

CONFIG = TrialConfig("MobileNetV2", 1.0, 64, 0.1, 1e-3, 0.0, "three")


def _study(url: str, study: str = "s") -> str:
    store = ResultStore(url)
    store.create_schema()
    for number in range(3):
        store.record(config_row(study, number, CONFIG, "COMPLETE"))
    store.record(config_row(study, 0, CONFIG, "COMPLETE", engine="keras-tuner"))
    store.dispose()
    return url


@pytest.fixture
def url(tmp_path: Path) -> str:
    return _study(f"sqlite:///{tmp_path / 'optuna.db'}")


def test_the_frames_show_the_latest_verdict_and_the_history(url: str) -> None:
    writer = R.ReviewWriter(url, "alice")
    writer.record("s", 0, "shortcut", "a marker\nin the corner")
    writer.record("s", 2, "unsure")
    writer.record("s", 0, "lungs", engine="keras-tuner")
    writer.dispose()
    R.record_verdict(url, "s", 0, "optuna", "bob", "lungs", "cropped: fine")
    latest = R.verdicts_frame(url, "s")
    assert list(latest.columns) == list(R.COLUMNS)
    assert latest[["engine", "trial", "verdict", "reviewer"]].values.tolist() == [
        ["keras-tuner", 0, "lungs", "alice"],
        ["optuna", 0, "lungs", "bob"],
        ["optuna", 2, "unsure", "alice"],
    ]
    assert str(latest["at"].dt.tz) == "UTC"
    history = R.history_frame(url, "s", 0, "optuna")
    assert history[["verdict", "reviewer", "note"]].values.tolist() == [
        ["shortcut", "alice", "a marker\nin the corner"],
        ["lungs", "bob", "cropped: fine"],
    ]
    assert history["at"].is_monotonic_increasing
    engine = read_only_engine(url)  # the page's own cached engine works as well as a URL
    pd.testing.assert_frame_equal(R.verdicts_frame(engine, "s"), latest)
    engine.dispose()


def test_no_reviews_give_empty_frames_with_the_columns(url: str) -> None:
    for frame in (R.verdicts_frame(url, "s"), R.history_frame(url, "s", 1)):
        assert frame.empty and list(frame.columns) == list(R.COLUMNS)


def test_without_a_reviewer_nothing_is_written(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_writable_engine(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("a writable connection was made")

    monkeypatch.setattr(R, "ResultStore", no_writable_engine)
    for reviewer in (None, "", "  "):
        with pytest.raises(SearchError) as info:
            R.record_verdict(url, "s", 0, "optuna", reviewer, "shortcut", "")
        assert str(info.value) == (
            "A verdict must be recorded by a named reviewer (start the leaderboard with --reviewer NAME), but this "
            "page was started without one."
        )
    with pytest.raises(SearchError, match=r"^`reviewer` must be at most 64 characters, but got 65\.$"):
        R.ReviewWriter(url, "x" * 65)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        ([], None),
        (["--allow-export"], None),
        (["--reviewer", "Dr Alice"], "Dr Alice"),
        (["--storage", "sqlite:///x.db", "--reviewer=bob"], "bob"),
    ],
)
def test_the_reviewer_comes_from_the_page_arguments(argv: list[str], expected: str | None) -> None:
    assert R.reviewer_from(argv) == expected


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--reviewer"], "`--reviewer` must be followed by a name, but got nothing after it."),
        (["--reviewer="], "`reviewer` must be a non-empty name, but got ''."),
        (
            ["--reviewer", "a\tb"],
            "`reviewer` must be printable (no control characters or line breaks), but got 'a\\tb' (character U+0009).",
        ),
    ],
)
def test_a_bad_reviewer_argument_is_one_sentence(argv: list[str], message: str) -> None:
    with pytest.raises(SearchError) as info:
        R.reviewer_from(argv)
    assert str(info.value) == message


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_the_read_only_page_engine_cannot_write_a_review_but_a_writer_can(
    tmp_path: Path, request: pytest.FixtureRequest, backend: str
) -> None:
    if backend == "postgresql":
        url, study = request.getfixturevalue("postgres"), "review-read-only"
        _study(url, study)
    else:
        url, study = _study(f"sqlite:///{tmp_path / 'optuna.db'}"), "s"
    page = read_only_engine(url)
    refused = ResultStore(url, engine=page)
    with pytest.raises(SearchError) as info:
        refused.add_review(study, 1, reviewer="mallory", verdict="shortcut")
    assert str(info.value).startswith("The results database must accept the review, but ")
    assert ("readonly database" if backend == "sqlite" else "read-only transaction") in str(info.value)
    writer = R.ReviewWriter(url, "alice")
    written = writer.record(study, 1, "shortcut", "reads the L marker")
    writer.dispose()
    assert [(r.reviewer, r.verdict) for r in refused.reviews(study, 1)] == [("alice", "shortcut")]
    frame = R.verdicts_frame(page, study)
    assert frame[["trial", "reviewer", "note"]].values.tolist() == [[1, "alice", "reads the L marker"]]
    assert frame["at"].iloc[0] == pd.Timestamp(written.created_at)
    page.dispose()


def test_an_old_database_says_how_to_upgrade(url: str) -> None:
    from sqlalchemy import text

    store = ResultStore(url)
    with store.engine.begin() as conn:
        conn.execute(text("DROP TABLE cxr_reviews"))
        conn.execute(text("UPDATE cxr_schema SET value = '5' WHERE key = 'version'"))
    store.dispose()
    with pytest.raises(SearchError, match=r"has version 5; upgrade it in place with: python -m search.store upgrade"):
        R.verdicts_frame(url, "s")


def test_review_and_mistakes_load_no_tensorflow() -> None:
    check = (
        "import sys, leaderboard.review, leaderboard.mistakes\n"
        "print(sorted(m for m in ('tensorflow', 'keras', 'keras_tuner') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", check], cwd=REPO, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"

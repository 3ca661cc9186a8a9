"""Reviews on the pages: the form only on a page started with --reviewer NAME, verdicts in the
ranking, the CSV and the trial's history."""

from __future__ import annotations

import io
import sys

import pandas as pd
import pytest

from leaderboard import data as D
from leaderboard import review as R
from tests.leaderboard_tests.conftest import WINNER, open_page, unescaped


def test_a_read_only_page_has_no_form_and_makes_no_writable_connection(
    monkeypatch: pytest.MonkeyPatch, writable_db: str
) -> None:
    def refused(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("a writable connection was made on a read-only page")

    monkeypatch.setattr(R, "ReviewWriter", refused)
    at = open_page(monkeypatch, writable_db, "trial", trial=str(WINNER))
    assert not at.exception
    assert not at.radio and not at.text_area and not [b for b in at.button if "verdict" in b.label]
    assert any(c.value.startswith("This page is read-only. To record a verdict") for c in at.caption)
    assert any(m.value == "Review: not reviewed" for m in at.markdown)
    assert "read-only" in at.sidebar.caption[0].value


def test_a_reviewer_records_a_verdict_that_the_pages_show(monkeypatch: pytest.MonkeyPatch, writable_db: str) -> None:
    at = open_page(monkeypatch, writable_db, "trial", trial=str(WINNER), reviewer="Dr Ada")
    assert not at.exception
    assert "reviews recorded as **Dr Ada**" in at.sidebar.caption[0].value
    at.radio[0].set_value("shortcut")
    at.text_area[0].input("reads the R marker in the corner")
    next(b for b in at.button if b.label == "Record the verdict as Dr Ada").click().run()
    assert not at.exception and not at.error
    line = unescaped(next(m.value for m in at.markdown if m.value.startswith("Review:")))
    assert line.startswith("Review: reads a shortcut — Dr Ada, ") and line.endswith(
        ": reads the R marker in the corner"
    )
    history = next(d.value for d in at.dataframe if "verdict" in d.value.columns)
    assert history[["reviewer", "verdict", "note"]].values.tolist() == [
        ["Dr Ada", "reads a shortcut", "reads the R marker in the corner"]
    ]
    # A second verdict supersedes the first; both stay in the history.
    at.radio[0].set_value("lungs")
    next(b for b in at.button if b.label == "Record the verdict as Dr Ada").click().run()
    history = next(d.value for d in at.dataframe if "verdict" in d.value.columns)
    assert history["verdict"].tolist() == ["reads a shortcut", "looks at the lungs"]


def test_a_shortcut_verdict_shows_in_the_ranking_the_top_line_and_the_export(
    monkeypatch: pytest.MonkeyPatch, writable_db: str
) -> None:
    R.record_verdict(writable_db, "demo", WINNER, "optuna", "Dr Ada", "shortcut", "a marker")
    R.record_verdict(writable_db, "demo", 47, "optuna", "Dr Bo", "lungs")
    at = open_page(monkeypatch, writable_db)
    assert not at.exception
    table = at.dataframe[0].value.set_index("trial_number")
    assert list(table.loc[WINNER, ["review", "reviewer"]]) == ["shortcut", "Dr Ada"]
    assert list(table.loc[47, ["review", "reviewer"]]) == ["lungs", "Dr Bo"]
    assert (table["review"] == "").sum() == len(table) - 2
    top = unescaped(next(m.value for m in at.markdown if "Top-ranked" in m.value))
    assert top.endswith("— Dr Ada marked it as reading a shortcut, so the default export never chooses it**")
    assert any(
        c.value.startswith(f"Never chosen by the default export, nor in its ensemble pool: trial(s) {WINNER},")
        for c in at.caption
    )
    verdicts = R.verdicts_frame(writable_db, "demo")
    csv = pd.read_csv(io.StringIO(D.ranking_csv(D.read_only_engine(writable_db), "demo", verdicts=verdicts)))
    assert list(csv.loc[0, ["trial_number", "review", "reviewer"]]) == [WINNER, "shortcut", "Dr Ada"]


def test_a_verdict_must_be_chosen(monkeypatch: pytest.MonkeyPatch, writable_db: str) -> None:
    at = open_page(monkeypatch, writable_db, "trial", trial=str(WINNER), reviewer="Dr Ada")
    next(b for b in at.button if b.label == "Record the verdict as Dr Ada").click().run()
    assert [e.value for e in at.error] == [
        "A verdict must be chosen (looks at the lungs, reads a shortcut or unsure), but none was."
    ]
    assert R.verdicts_frame(writable_db, "demo").empty


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("a\nb", "`reviewer` must be printable (no control characters or line breaks), but got 'a\\nb' "
                 "(character U+000A)."),
        ("x" * 65, "`reviewer` must be at most 64 characters, but got 65."),
    ],
)  # fmt: skip
def test_a_bad_reviewer_name_is_one_sentence(
    monkeypatch: pytest.MonkeyPatch, writable_db: str, name: str, message: str
) -> None:
    at = open_page(monkeypatch, writable_db, reviewer=name)
    assert not at.exception
    assert [unescaped(e.value) for e in at.error] == [unescaped(D.escape_markdown(message))]
    assert not at.dataframe, "no page without a valid reviewer"


def test_the_command_passes_the_reviewer_to_the_page(monkeypatch: pytest.MonkeyPatch) -> None:
    from leaderboard import __main__ as entry

    seen: list[list[str]] = []
    monkeypatch.setattr("streamlit.web.cli.main", lambda: seen.append(list(sys.argv)))
    monkeypatch.setattr(sys, "argv", list(sys.argv))  # the command replaces both: restored after the test
    monkeypatch.setenv("CXR_STORAGE", "")
    with pytest.raises(SystemExit):
        entry.main(["--storage", "sqlite:///x.db", "--reviewer", " Dr Ada "])
    assert seen[0][-3:] == ["--", "--reviewer", "Dr Ada"]
    with pytest.raises(SystemExit):
        entry.main(["--storage", "sqlite:///x.db"])
    assert "--reviewer" not in seen[1]


def test_the_command_refuses_a_bad_reviewer_name(capsys: pytest.CaptureFixture[str]) -> None:
    from leaderboard import __main__ as entry

    with pytest.raises(SystemExit) as info:
        entry.main(["--storage", "sqlite:///x.db", "--reviewer", "  "])
    assert info.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        "python -m leaderboard: error: `reviewer` must be a non-empty name, but got '  '."
    )

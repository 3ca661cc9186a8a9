"""Reviewers' verdicts: the store's rules and history, the schema upgrade that brings the table, and
trials marked as reading a shortcut left out of what export and evaluate choose by themselves."""

from __future__ import annotations

import re
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import inspect, text

from search import SearchError
from search._records import find_trial
from search.space import TrialConfig
from search.store import (
    NOTE_MAX_CHARS,
    SCHEMA_VERSION,
    VERDICTS,
    Ranking,
    ResultStore,
    config_row,
    upgrade_schema,
)
from tests.conftest import run_module

CONFIG = TrialConfig("MobileNetV2", 1.0, 64, 0.1, 1e-3, 0.0, "three")
RANKING = Ranking.for_figure("op_sensitivity")


def _store(url: str, study: str = "s", sensitivities: tuple[float, ...] = (0.9, 0.8, 0.7)) -> ResultStore:
    """Completed trials 0.. of ``study`` ranked in that order, each with a saved model."""
    from search.store import ArtifactRecord

    store = ResultStore(url)
    store.create_schema()
    for number, sensitivity in enumerate(sensitivities):
        row = config_row(study, number, CONFIG, "COMPLETE")
        row.op_sensitivity, row.covid_specificity = sensitivity, 0.9
        store.record(row, artifacts=[ArtifactRecord("model", f"id-{number}", f"trial-{number}.keras", 1)])
    return store


def test_verdicts_are_append_only_and_the_latest_counts(tmp_path: Path) -> None:
    store = _store(f"sqlite:///{tmp_path / 'r.db'}")
    before = datetime.now(UTC)
    first = store.add_review("s", 0, reviewer="alice", verdict="shortcut", note="an arrow\r\nin the corner")
    assert first.note == "an arrow\nin the corner" and first.engine == "optuna"
    assert first.created_at.tzinfo is not None and before - timedelta(seconds=1) <= first.created_at
    store.add_review("s", 1, reviewer="  bob  ", verdict="unsure")
    second = store.add_review("s", 0, reviewer="carol", verdict="lungs", note="looks at the lungs after all")
    history = store.reviews("s", 0)
    assert [(r.reviewer, r.verdict) for r in history] == [("alice", "shortcut"), ("carol", "lungs")]
    assert history[0].created_at.tzinfo == UTC, "read back as UTC, whatever the backend returns"
    latest = store.latest_verdicts("s")
    assert set(latest) == {("optuna", 0), ("optuna", 1)}
    assert latest[("optuna", 0)] == second and latest[("optuna", 1)].reviewer == "bob", "surrounding spaces dropped"
    assert [r.trial_number for r in store.reviews("s")] == [0, 1, 0], "oldest first"
    assert store.latest_verdicts("other") == {} and store.reviews("s", 2) == []


def test_a_verdict_outlives_its_trial_being_recorded_again(tmp_path: Path) -> None:
    """A worker's retry replaces the trial row; the reviews are keyed by the trial, not the row."""
    store = _store(f"sqlite:///{tmp_path / 'r.db'}")
    store.add_review("s", 0, reviewer="alice", verdict="shortcut")
    store.record(config_row("s", 0, CONFIG, "COMPLETE"))
    assert store.latest_verdicts("s")[("optuna", 0)].verdict == "shortcut"


def test_engines_are_kept_apart(tmp_path: Path) -> None:
    store = _store(f"sqlite:///{tmp_path / 'r.db'}")
    store.record(config_row("s", 0, CONFIG, "COMPLETE", engine="keras-tuner"))
    store.add_review("s", 0, reviewer="alice", verdict="shortcut", engine="keras-tuner")
    store.add_review("s", 0, reviewer="alice", verdict="lungs")
    latest = store.latest_verdicts("s")
    assert (latest[("keras-tuner", 0)].verdict, latest[("optuna", 0)].verdict) == ("shortcut", "lungs")
    assert [r.verdict for r in store.reviews("s", 0, engine="keras-tuner")] == ["shortcut"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"verdict": "maybe"}, "`verdict` must be one of lungs, shortcut, unsure, but got 'maybe'."),
        ({"verdict": "Shortcut"}, "`verdict` must be one of lungs, shortcut, unsure, but got 'Shortcut'."),
        ({"reviewer": ""}, "`reviewer` must be a non-empty name, but got ''."),
        ({"reviewer": "   "}, "`reviewer` must be a non-empty name, but got '   '."),
        ({"reviewer": None}, "`reviewer` must be a name (text), but got None."),
        ({"reviewer": "a" * 65}, "`reviewer` must be at most 64 characters, but got 65."),
        (
            {"reviewer": "al\nice"},
            "`reviewer` must be printable (no control characters or line breaks), but got 'al\\nice' (character U+000A).",
        ),
        (
            {"reviewer": "eve\u202e"},
            "`reviewer` must be printable (no control characters or line breaks), but got 'eve\\u202e' (character U+202E).",
        ),
        ({"note": "x" * (NOTE_MAX_CHARS + 1)}, "`note` must be at most 2000 characters, but got 2001."),
        (
            {"note": "red \x1b[31malert"},
            "`note` must be printable text (line breaks and tabs allowed), but got the character U+001B at position 4.",
        ),
        ({"note": 3}, "`note` must be text, but got 3."),
        (
            {"trial_number": 7},
            "`trial_number` must be a trial of study 's' (engine optuna) with stored results, but got 7.",
        ),
        (
            {"trial_number": 0, "engine": "keras-tuner"},
            "`trial_number` must be a trial of study 's' (engine keras-tuner) with stored results, but got 0.",
        ),
        (
            {"study": "nope"},
            "`trial_number` must be a trial of study 'nope' (engine optuna) with stored results, but got 0.",
        ),
        ({"trial_number": "0"}, "`trial_number` must be a whole number, but got '0'."),
        ({"trial_number": True}, "`trial_number` must be a whole number, but got True."),
    ],
)
def test_each_bad_value_is_one_sentence(tmp_path: Path, kwargs: dict[str, Any], message: str) -> None:
    store = _store(f"sqlite:///{tmp_path / 'r.db'}")
    args: dict[str, Any] = {"study": "s", "trial_number": 0, "reviewer": "alice", "verdict": "lungs", "note": ""}
    args.update(kwargs)
    study, number = args.pop("study"), args.pop("trial_number")
    with pytest.raises(SearchError) as info:
        store.add_review(study, number, **args)
    assert str(info.value) == message
    assert store.reviews(study) == [], "nothing is written for a bad value"


def test_the_longest_allowed_values_and_every_verdict_are_accepted(tmp_path: Path) -> None:
    store = _store(f"sqlite:///{tmp_path / 'r.db'}")
    for verdict in VERDICTS:
        store.add_review("s", 0, reviewer="é" * 64, verdict=verdict, note="n\tö\n" * (NOTE_MAX_CHARS // 4))
    assert [r.verdict for r in store.reviews("s", 0)] == list(VERDICTS)


@pytest.mark.postgres
def test_reviews_on_postgres(postgres: str) -> None:
    study = "reviews-pg"
    store = _store(postgres, study)
    store.record(config_row(study, 0, CONFIG, "COMPLETE", engine="keras-tuner"))
    store.add_review(study, 0, reviewer="alice", verdict="shortcut", note="a marker\nat the edge")
    store.add_review(study, 0, reviewer="alice", verdict="lungs", engine="keras-tuner")
    last = store.add_review(study, 0, reviewer="bob", verdict="unsure")
    store.add_review(study, 2, reviewer="bob", verdict="shortcut")
    latest = store.latest_verdicts(study)
    assert {k: r.verdict for k, r in latest.items()} == {
        ("optuna", 0): "unsure",
        ("keras-tuner", 0): "lungs",
        ("optuna", 2): "shortcut",
    }
    assert latest[("optuna", 0)] == last and last.created_at.tzinfo is not None
    assert [r.verdict for r in store.reviews(study, 0, engine="optuna")] == ["shortcut", "unsure"]
    assert store.reviews(study, 0)[0].note == "a marker\nat the edge"
    with pytest.raises(SearchError, match=r"^`verdict` must be one of lungs, shortcut, unsure, but got 'no'\.$"):
        store.add_review(study, 0, reviewer="bob", verdict="no")
    store.dispose()


# --- the schema upgrade -------------------------------------------------------------------


def _version_5(store: ResultStore) -> None:
    """Take the tables back to version 5: no reviews table, no mistakes column."""
    with store.engine.begin() as conn:
        conn.execute(text("DROP TABLE cxr_reviews"))
        conn.execute(text("ALTER TABLE cxr_trials DROP COLUMN mistakes_json"))
        conn.execute(text("UPDATE cxr_schema SET value = '5' WHERE key = 'version'"))


@pytest.mark.slow
def test_the_upgrade_from_version_5_adds_the_reviews_table_and_the_mistakes_column(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'v5.db'}"
    store = _store(url)
    _version_5(store)
    store.dispose()
    with pytest.raises(SearchError, match=rf"must be version {SCHEMA_VERSION}, but .* has version 5; upgrade it"):
        ResultStore(url).check_schema()
    done = run_module("search.store", "upgrade", "--storage", url)
    assert done.returncode == 0, done.stderr
    assert f"from results schema version 5 to {SCHEMA_VERSION}" in done.stdout
    store = ResultStore(url)
    store.check_schema()
    assert "cxr_reviews" in inspect(store.engine).get_table_names()
    assert [(r.trial_number, r.op_sensitivity, r.mistakes_json) for r in store.trials("s")] == [
        (0, 0.9, None),
        (1, 0.8, None),
        (2, 0.7, None),
    ], "every row kept; old trials have no mistakes"
    store.add_review("s", 1, reviewer="alice", verdict="shortcut")
    assert store.latest_verdicts("s")[("optuna", 1)].verdict == "shortcut"


@pytest.mark.postgres
def test_the_upgrade_from_version_5_on_postgres(postgres: str) -> None:
    study = "upgrade-6"
    store = _store(postgres, study)
    _version_5(store)
    store.dispose()
    store = ResultStore(postgres)
    assert upgrade_schema(store.engine) == (5, SCHEMA_VERSION)
    store.check_schema()
    assert [r.trial_number for r in store.trials(study)] == [0, 1, 2]
    store.add_review(study, 0, reviewer="alice", verdict="lungs")
    assert store.latest_verdicts(study)[("optuna", 0)].verdict == "lungs"
    store.dispose()


# --- export and evaluate skip shortcut trials ---------------------------------------------

SKIPPED = re.compile(
    r"^trial (\d+) skipped: alice marked it as reading a shortcut \(\d{4}-\d\d-\d\d \d\d:\d\d UTC\): "
    r"reads the L marker$",
    re.MULTILINE,
)


def _study_data(store: ResultStore) -> Any:
    return SimpleNamespace(store=store, info=SimpleNamespace(ranking=RANKING))


def test_the_default_winner_and_pool_skip_shortcut_trials(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from search.export._members import _pool

    store = _store(f"sqlite:///{tmp_path / 'r.db'}")
    store.add_review("s", 0, reviewer="alice", verdict="shortcut", note="reads the\nL marker")
    store.add_review("s", 2, reviewer="bob", verdict="lungs")
    assert find_trial(store, "s", None, ranking=RANKING).trial_number == 1
    assert SKIPPED.findall(capsys.readouterr().err) == ["0"]
    pool, _ = _pool(_study_data(store), "s", None, None)
    assert [r.trial_number for r in pool] == [1, 2]
    assert SKIPPED.findall(capsys.readouterr().err) == ["0"]
    top, _ = _pool(_study_data(store), "s", 1, None)  # --ensemble 1: the top-ranked trial alone
    assert [r.trial_number for r in top] == [1]
    named, _ = _pool(_study_data(store), "s", None, [0, 2])  # --members: used, with a warning
    assert [r.trial_number for r in named] == [0, 2]
    err = capsys.readouterr().err
    assert "warning: trial 0 is used as named, but alice marked it as reading a shortcut (" in err
    assert find_trial(store, "s", 0).trial_number == 0  # --trial 0
    assert "warning: trial 0 is used as named, but alice marked it" in capsys.readouterr().err
    store.add_review("s", 0, reviewer="carol", verdict="lungs", note="the marker was cropped out")
    assert find_trial(store, "s", None, ranking=RANKING).trial_number == 0, "a newer verdict supersedes"
    assert capsys.readouterr().err == ""


def test_when_every_trial_is_marked_the_default_is_refused(tmp_path: Path) -> None:
    from search.export._members import _pool

    store = _store(f"sqlite:///{tmp_path / 'r.db'}", sensitivities=(0.9, 0.8))
    for number in (0, 1):
        store.add_review("s", number, reviewer="alice", verdict="shortcut")
    with pytest.raises(SearchError) as info:
        find_trial(store, "s", None, ranking=RANKING)
    assert str(info.value) == (
        "The study must have a completed trial that no reviewer marked as reading a shortcut, but all 2 completed "
        "trials of 's' are marked; name one with --trial to use it anyway."
    )
    with pytest.raises(SearchError) as info:
        _pool(_study_data(store), "s", None, None)
    assert str(info.value) == (
        "The study must have a completed trial with a saved model that no reviewer marked as reading a shortcut, "
        "but all 2 of 's' are marked; name them with --trial or --members to use them anyway."
    )


@pytest.fixture(scope="module")
def reviewed(searched: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, int]:
    """A private copy of the finished 3-trial search whose top-ranked trial a reviewer marked as reading a shortcut."""
    import optuna

    folder = tmp_path_factory.mktemp("reviewed")
    for name in ("optuna.db", "artifacts", ".cache"):
        source = searched / name
        (shutil.copytree if source.is_dir() else shutil.copy)(source, folder / name)
    url = f"sqlite:///{folder / 'optuna.db'}"
    loaded = optuna.load_study(study_name="cxr-search", storage=url)
    loaded.set_user_attr("cxr_artifacts", str(folder / "artifacts"))
    loaded.set_user_attr("cxr_cache_dir", str(folder / ".cache"))
    store = ResultStore(url)
    top = store.ranked("cxr-search")
    assert len(top) >= 2, "the search must complete two trials for one to be skipped"
    store.add_review("cxr-search", top[0].trial_number, reviewer="alice", verdict="shortcut", note="reads the L marker")
    return url, top[0].trial_number


@pytest.mark.slow
def test_a_real_export_and_evaluate_skip_the_marked_trial(
    reviewed: tuple[str, int], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from search.evaluate import main as evaluate_main
    from search.export import export

    url, marked = reviewed
    result = export(url, "cxr-search", tmp_path / "default", formats=["keras"])
    assert marked not in result.card["selection"]["pool"]
    assert marked not in [m["trial"] for m in result.card["members"]]
    assert SKIPPED.findall(capsys.readouterr().err) == [str(marked)]
    assert evaluate_main(["--study", "cxr-search", "--storage", url]) == 0
    captured = capsys.readouterr()
    assert SKIPPED.findall(captured.err) == [str(marked)]
    evaluated = int(re.findall(r"^Trial (\d+) on the test split", captured.out, re.MULTILINE)[0])
    assert evaluated != marked and evaluated == find_trial(ResultStore(url), "cxr-search", None).trial_number
    named = export(url, "cxr-search", tmp_path / "named", trial=marked, formats=["keras"])
    assert [m["trial"] for m in named.card["members"]] == [marked], "a trial named by number is exported"
    assert f"warning: trial {marked} is used as named, but alice marked it as reading a shortcut (" in (
        capsys.readouterr().err
    )

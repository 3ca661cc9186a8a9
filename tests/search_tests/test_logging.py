"""search.logging: diagnostics reach stderr in the words they always had, and a user can silence them."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from search import logging as cxr_logging
from search._records import find_trial
from search.space import TrialConfig
from search.store import Ranking, ResultStore, config_row
from tests.conftest import REPO

WARNING = "warning: no completed trial of 's' reaches COVID specificity 0.50; the top-ranked trial 0 has 0.10 (it may call most X-rays COVID).\n"
ARGMAX = Ranking(("covid_sensitivity", "lung_focus", "roc_auc"))


@pytest.fixture(autouse=True)
def _restored() -> Iterator[None]:
    """Each test leaves the library's logger as it found it."""
    root = logging.getLogger(cxr_logging.LOGGER_NAME)
    level, handlers, propagate = root.level, list(root.handlers), root.propagate
    yield
    root.setLevel(level)
    root.handlers[:] = handlers
    root.propagate = propagate


def _degenerate(path: Path) -> ResultStore:
    """One completed trial that calls most X-rays COVID: choosing it as the winner warns."""
    store = ResultStore(f"sqlite:///{path}")
    store.create_schema()
    row = config_row("s", 0, TrialConfig("MobileNetV2", 1.0, 64, 0.1, 1e-3, 0.0, "three"), "COMPLETE")
    row.covid_sensitivity, row.covid_specificity = 1.0, 0.1
    store.record(row)
    return store


def test_a_warning_reaches_stderr_in_its_usual_words(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    find_trial(_degenerate(tmp_path / "r.db"), "s", None, ranking=ARGMAX)
    assert capsys.readouterr() == ("", WARNING)


def test_progress_lines_are_bare_and_warnings_say_so(capsys: pytest.CaptureFixture[str]) -> None:
    logger = cxr_logging.get_logger("tests.search_tests.test_logging")
    assert logger.name == "cxr_search.tests.search_tests.test_logging"
    logger.info("Refitting trial 3 ...")
    logger.warning("the top trial may call most X-rays COVID.")
    logger.debug("not shown by default")
    assert capsys.readouterr().err == "Refitting trial 3 ...\nwarning: the top trial may call most X-rays COVID.\n"


@pytest.mark.parametrize(
    "silence",
    [
        lambda: logging.getLogger("cxr_search").setLevel(logging.ERROR),
        lambda: cxr_logging.set_verbosity(logging.ERROR),
        cxr_logging.disable_default_handler,
    ],
)
def test_a_user_can_silence_it(tmp_path: Path, capsys: pytest.CaptureFixture[str], silence: object) -> None:
    silence()  # type: ignore[operator]
    find_trial(_degenerate(tmp_path / "r.db"), "s", None, ranking=ARGMAX)
    assert capsys.readouterr() == ("", "")


def test_set_verbosity_keeps_warnings_and_drops_progress(capsys: pytest.CaptureFixture[str]) -> None:
    cxr_logging.set_verbosity(logging.WARNING)
    assert cxr_logging.get_verbosity() == logging.WARNING
    logger = cxr_logging.get_logger(__name__)
    logger.info("Refitting trial 3 ...")
    logger.warning("kept.")
    assert capsys.readouterr().err == "warning: kept.\n"


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_an_application_can_take_the_records(capsys: pytest.CaptureFixture[str]) -> None:
    collect = _Collect()
    logging.getLogger().addHandler(collect)  # the application's own handler, on its root logger
    try:
        cxr_logging.disable_default_handler()
        cxr_logging.enable_propagation()
        cxr_logging.get_logger(__name__).warning("routed.")
    finally:
        logging.getLogger().removeHandler(collect)
    assert [(r.name, r.levelname, r.getMessage()) for r in collect.records] == [
        ("cxr_search.tests.search_tests.test_logging", "WARNING", "routed.")
    ]
    assert capsys.readouterr().err == ""


_FRESH = """
import logging, sys
{setup}
from search._records import find_trial
from search.store import Ranking, ResultStore
find_trial(ResultStore(sys.argv[1]), "s", None, ranking=Ranking(("covid_sensitivity", "lung_focus", "roc_auc")))
"""


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        ("", WARNING),  # nothing configured: the line a command always printed
        ("logging.basicConfig(level=logging.WARNING)", WARNING),  # an application's root handler: still once
        ("logging.getLogger('cxr_search').setLevel(logging.ERROR)", ""),  # set before the import: kept
    ],
)
def test_a_fresh_process_prints_the_warning_once_unless_silenced(tmp_path: Path, setup: str, expected: str) -> None:
    _degenerate(tmp_path / "r.db")
    done = subprocess.run(
        [sys.executable, "-c", _FRESH.format(setup=setup), f"sqlite:///{tmp_path / 'r.db'}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "", expected)

"""Shared fixtures (the real sample in ../shared, small synthetic datasets, a finished search, a
PostgreSQL server) and helpers (a free port, polling, child processes), and the test tiers.

Tiers: ``slow`` (trains models, runs searches, exports or child processes: over about 5 s),
``postgres`` (starts a real PostgreSQL) and ``browser`` (drives Chromium). ``make test`` runs
everything; ``make test-fast`` leaves those three out. A test that uses a fixture below which
starts PostgreSQL or trains is given that fixture's marker here, so it cannot be forgotten.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

from cxrdata.synthetic import SyntheticSpec, make_synthetic_dataset

if TYPE_CHECKING:
    from tests.postgres import PostgresServer

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("CXR_SHARED", REPO.parent / "shared"))
RADIOGRAPHY = SHARED / "cxr" / "radiography" / "COVID-19_Radiography_Dataset"
LUNG_MASKS = SHARED / "cxr" / "lung-masks"
WEIGHTS = SHARED / "weights"


@pytest.fixture(autouse=True)
def _main_module_restored() -> Iterator[None]:
    """Streamlit's AppTest installs the page as ``sys.modules['__main__']`` and leaves it there;
    put pytest's back, so that processes later tests spawn do not start by running the page."""
    main = sys.modules["__main__"]
    yield
    sys.modules["__main__"] = main


@pytest.fixture(scope="session")
def radiography() -> Path:
    """The real 1,800-image sample; its absence is a broken checkout, not a reason to skip."""
    assert RADIOGRAPHY.is_dir(), f"the shared sample must be at {RADIOGRAPHY} (set CXR_SHARED to its parent)"
    return RADIOGRAPHY


@pytest.fixture(scope="session")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small three-class synthetic dataset with masks and patient ids (read-only in tests)."""
    root = tmp_path_factory.mktemp("synthetic")
    return make_synthetic_dataset(root, SyntheticSpec(per_class=12, size=48, patients_per_class=6, seed=1))


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A three-class synthetic dataset small enough to train on in seconds."""
    root = tmp_path_factory.mktemp("tiny")
    return make_synthetic_dataset(root, SyntheticSpec(per_class=16, size=40, seed=3))


BASE = ["--weights", "none", "--image-size", "32", "--max-epochs", "2", "--backbones", "MobileNet_0.25"]


def child_env(**extra: str) -> dict[str, str]:
    """This process's environment with the checkout importable, plus ``extra``: for ``python -m`` children."""
    return {**os.environ, "PYTHONPATH": str(REPO), **extra}


def run_module(
    module: str, *args: str, cwd: Path = REPO, env: Mapping[str, str] | None = None, timeout: float | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m module args`` as a user runs it, to the end; its output is captured as text."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=cwd,
        env=dict(env) if env is not None else child_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def spawn(
    module: str, *args: str, cwd: Path, env: Mapping[str, str] | None = None, **popen: Any
) -> subprocess.Popen[str]:
    """``python -m module args`` in the background, with stdout and stderr as text pipes unless ``popen`` says otherwise."""
    options: dict[str, Any] = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, **popen}
    return subprocess.Popen(
        [sys.executable, "-m", module, *args],
        cwd=cwd,
        env=dict(env) if env is not None else child_env(),
        text=True,
        **options,
    )


def launch(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``python -m search.launch args``, to the end."""
    return run_module("search.launch", *args, cwd=cwd)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on at the moment of asking."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


T = TypeVar("T")


def wait_until(
    predicate: Callable[[], T],
    timeout: float,
    interval: float = 0.2,
    *,
    what: str = "the condition",
    ignoring: tuple[type[BaseException], ...] = (),
) -> T:
    """Call ``predicate`` every ``interval`` seconds until it returns something truthy, and return that.

    An exception of a type in ``ignoring`` counts as "not yet" (a database still being created).
    After ``timeout`` seconds the test fails, saying ``what`` it waited for.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = predicate()
        except ignoring:
            pass
        else:
            if value:
                return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what} did not happen within {timeout:g} s")
        time.sleep(interval)


@pytest.fixture(scope="session")
def searched(tiny: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished 3-trial search with 2 workers, on the default embedded SQLite."""
    workdir = tmp_path_factory.mktemp("search")
    done = launch("--trials", "3", "--workers", "2", "--data", str(tiny), *BASE, cwd=workdir)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Top trials (validation split; COVID threshold chosen for COVID specificity 0.95" in done.stdout
    return workdir


@pytest.fixture(scope="session")
def segmenter(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small lung segmenter trained on the shared human masks (48 px, 6 epochs: about half a minute)."""
    from cxrdata.lungs import held_out, load_pairs, train_segmenter

    pairs = load_pairs(LUNG_MASKS, 48)
    train, _ = held_out(pairs)
    path = tmp_path_factory.mktemp("segmenter") / "lungs.keras"
    train_segmenter(pairs, train, epochs=6).save(path)
    return path


@pytest.fixture(scope="session")
def postgres() -> Iterator[str]:
    """A real PostgreSQL server on a loopback port, for the session; yields its URL."""
    from tests.postgres import PostgresServer

    server = PostgresServer().start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server of the test's own, which the test may restart."""
    from tests.postgres import PostgresServer

    server = PostgresServer().start()
    try:
        yield server
    finally:
        server.stop()


# Fixtures whose users belong to a tier whatever else they do.
_FIXTURE_MARKERS = {"postgres": "postgres", "postgres_server": "postgres", "searched": "slow", "segmenter": "slow"}


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        for fixture in getattr(item, "fixturenames", ()):
            if fixture in _FIXTURE_MARKERS:
                item.add_marker(_FIXTURE_MARKERS[fixture])

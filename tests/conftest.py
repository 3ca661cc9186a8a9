"""Shared fixtures: the real sample in ../shared and small synthetic datasets."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cxrdata.synthetic import SyntheticSpec, make_synthetic_dataset
from tests.postgres import PostgresServer as PostgresServerType

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("CXR_SHARED", REPO.parent / "shared"))
RADIOGRAPHY = SHARED / "cxr" / "radiography" / "COVID-19_Radiography_Dataset"
LUNG_MASKS = SHARED / "cxr" / "lung-masks"
WEIGHTS = SHARED / "weights"


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


def launch(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "search.launch", *args], cwd=cwd, capture_output=True, text=True, env=env, check=False
    )


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
def postgres_server() -> Iterator[PostgresServerType]:
    """A PostgreSQL server of the test's own, which the test may restart."""
    from tests.postgres import PostgresServer

    server = PostgresServer().start()
    try:
        yield server
    finally:
        server.stop()

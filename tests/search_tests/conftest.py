"""A finished tiny search, shared by the launch, evaluate, export and predict tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

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
    assert "Top trials (validation split, ranked by COVID sensitivity)" in done.stdout
    return workdir

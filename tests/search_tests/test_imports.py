"""What stays light: the leaderboard's data layer and launch's parent process never load TensorFlow."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import BASE, REPO

_CHECK = """
import sys
{body}
heavy = sorted(m for m in ("tensorflow", "keras", "keras_tuner") if m in sys.modules)
print("loaded:", ",".join(heavy))
"""


def _loaded(body: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", _CHECK.format(body=body)], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip().splitlines()[-1]


@pytest.mark.parametrize(
    "modules", ["leaderboard.data", "leaderboard.charts", "leaderboard.exports", "search.launch", "search.store"]
)
def test_importing_loads_no_tensorflow(modules: str) -> None:
    assert _loaded(f"import {modules}") == "loaded:"


def test_launch_prepares_a_study_without_tensorflow(tiny: Path, tmp_path: Path) -> None:
    """The parent process scans, checks weights, creates the study and warms the cache: no TensorFlow."""
    flags = ["--trials", "1", "--data", str(tiny), "--storage", f"sqlite:///{tmp_path / 'o.db'}", *BASE]
    body = f"from search.launch import parse_args, prepare\nprepare(parse_args({flags!r}))"
    assert _loaded(body) == "loaded:"

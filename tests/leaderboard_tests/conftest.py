from __future__ import annotations

from pathlib import Path

import pytest

from leaderboard.synthetic import make_synthetic_study

WINNER = 17


@pytest.fixture(scope="session")
def study_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A 200-trial study whose top-ranked trial is known (trial 17)."""
    path: Path = tmp_path_factory.mktemp("leaderboard") / "optuna.db"
    url = f"sqlite:///{path}"
    assert make_synthetic_study(url, "demo", 200, seed=4, best=WINNER) == WINNER
    make_synthetic_study(url, "second", 30, seed=5, with_lung_focus=False)
    return url

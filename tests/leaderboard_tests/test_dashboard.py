"""A study made by cxr-search also opens in optuna-dashboard (the package from the registry)."""

from __future__ import annotations

import json
import shutil
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import free_port, wait_until

pytestmark = pytest.mark.slow


def _get(port: int, path: str) -> Any:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
        return json.loads(response.read())


@pytest.fixture
def dashboard(study_db: str, tmp_path: Path) -> Iterator[int]:
    """optuna-dashboard on a copy of the synthetic studies' database (it may add tables of its own)."""
    import subprocess

    copy = tmp_path / "optuna.db"
    shutil.copy(study_db.removeprefix("sqlite:///"), copy)
    port = free_port()
    command = [str(Path(sys.executable).with_name("optuna-dashboard")), f"sqlite:///{copy}"]
    server = subprocess.Popen(
        [*command, "--host", "127.0.0.1", "--port", str(port), "--quiet"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: _get(port, "/api/meta"), 60, what="optuna-dashboard answering", ignoring=(OSError,))
        yield port
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_the_study_opens_in_optuna_dashboard(dashboard: int) -> None:
    studies = {s["study_name"]: s for s in _get(dashboard, "/api/studies")["study_summaries"]}
    assert {"demo", "second"} <= set(studies)
    detail = _get(dashboard, f"/api/studies/{studies['demo']['study_id']}")
    assert len(detail["trials"]) == 200
    assert any(t["state"] == "Complete" for t in detail["trials"])
    assert "cxr_artifacts" in {a["key"] for a in detail["user_attrs"]}  # the study's own attributes read too

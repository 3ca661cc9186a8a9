"""The export button's machinery: one export per model at a time, a time limit, no URL in argv."""

from __future__ import annotations

import fcntl
import subprocess
from pathlib import Path
from typing import Any

import pytest

from leaderboard.exports import _stem, export_allowed, run_export


@pytest.fixture(autouse=True)
def _cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CXR_EXPORT_CACHE", str(tmp_path / "exports"))


@pytest.mark.parametrize(
    ("argv", "variable", "allowed"),
    [([], None, False), (["--allow-export"], None, True), ([], "1", True), ([], "0", False), ([], "yes", True)],
)
def test_export_is_allowed_only_when_asked(
    monkeypatch: pytest.MonkeyPatch, argv: list[str], variable: str | None, allowed: bool
) -> None:
    if variable is None:
        monkeypatch.delenv("CXR_ALLOW_EXPORT", raising=False)
    else:
        monkeypatch.setenv("CXR_ALLOW_EXPORT", variable)
    assert export_allowed(argv) is allowed


def test_a_second_export_of_the_same_model_waits_its_turn(tmp_path: Path) -> None:
    folder = tmp_path / "exports"
    folder.mkdir()
    with (folder / f"{_stem('s', ['--trial', '1'], 'v1')}.lock").open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # another page's export of the same model is running
        result = run_export("sqlite:///nowhere.db", "s", ["--trial", "1"], "v1")
    assert result.archive is None and result.message is not None and "already running" in result.message


def test_an_export_past_its_time_limit_is_stopped(searched: Path) -> None:
    result = run_export(f"sqlite:///{searched / 'optuna.db'}", "cxr-search", ["--trial", "0"], "v", timeout_s=1)
    assert result.archive is None
    assert result.message == "An export must finish within 1 s (CXR_EXPORT_TIMEOUT_S), but this one did not."


@pytest.mark.slow  # the child is a real export process
def test_the_database_url_reaches_the_child_by_environment_only(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[dict[str, Any]] = []
    real = subprocess.run

    def spy(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        seen.append({"argv": command, "env": kwargs["env"]})
        return real(command, **kwargs)

    monkeypatch.setattr(subprocess, "run", spy)
    url = "postgresql+psycopg://alice:s3cret@127.0.0.1:1/nowhere"
    result = run_export(url, "s", ["--trial", "1"], "v")
    assert result.archive is None and result.message and "s3cret" not in result.message
    (call,) = seen
    assert not any("s3cret" in part for part in call["argv"])
    assert call["env"]["CXR_STORAGE"] == url

"""Settings: every environment variable in one place, checked up front, one sentence when bad."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest

from search import SearchError, Settings, check_settings, settings
from tests.conftest import REPO

# The defaults as they were when each variable was read where it was used: they must not move.
DEFAULTS = {
    "CXR_STORAGE": "sqlite:///optuna.db",
    "CXR_ARTIFACTS_ROOT": None,
    "CXR_PRECISION": "auto",
    "CXR_FEATURE_CACHE_GB": 4.0,
    "CXR_HEARTBEAT_INTERVAL_S": 30,
    "CXR_HEARTBEAT_GRACE_S": 120,
    "CXR_ALLOW_EXPORT": False,
    "CXR_EXPORT_TIMEOUT_S": 1800,
    "CXR_EXPORT_CACHE": None,
}


def _by_variable(s: Settings) -> dict[str, object]:
    return {f.metadata["variable"]: getattr(s, f.name) for f in fields(Settings)}


def test_the_defaults_are_the_ones_each_variable_always_had() -> None:
    assert _by_variable(Settings.from_env({})) == DEFAULTS
    assert Settings.from_env({}) == Settings()


def test_an_empty_value_counts_as_unset() -> None:
    assert Settings.from_env(dict.fromkeys(DEFAULTS, "")) == Settings()


def test_the_variables_the_modules_name_are_the_settings_ones() -> None:
    from leaderboard.exports import ALLOW_VARIABLE
    from search.artifacts._location import ROOT_VARIABLE
    from search.features import DEFAULT_LIMIT_GB
    from search.store import DEFAULT_STORAGE, STORAGE_VARIABLE

    assert (STORAGE_VARIABLE, ROOT_VARIABLE, ALLOW_VARIABLE) == (
        "CXR_STORAGE",
        "CXR_ARTIFACTS_ROOT",
        "CXR_ALLOW_EXPORT",
    )
    assert DEFAULTS["CXR_STORAGE"] == DEFAULT_STORAGE
    assert DEFAULTS["CXR_FEATURE_CACHE_GB"] == DEFAULT_LIMIT_GB


@pytest.mark.parametrize(
    ("variable", "raw", "expected"),
    [
        ("CXR_STORAGE", "postgresql+psycopg://u@db/cxr", "postgresql+psycopg://u@db/cxr"),
        ("CXR_ARTIFACTS_ROOT", "s3://bucket", "s3://bucket"),
        ("CXR_PRECISION", "mixed", "mixed"),
        ("CXR_FEATURE_CACHE_GB", "0", 0.0),
        ("CXR_FEATURE_CACHE_GB", "0.5", 0.5),
        ("CXR_HEARTBEAT_INTERVAL_S", "1", 1),
        ("CXR_HEARTBEAT_GRACE_S", " 3 ", 3),
        ("CXR_ALLOW_EXPORT", "YES", True),
        ("CXR_ALLOW_EXPORT", "0", False),
        ("CXR_EXPORT_TIMEOUT_S", "60", 60),
        ("CXR_EXPORT_CACHE", "/var/cache/cxr", "/var/cache/cxr"),
    ],
)
def test_good_values_are_parsed(variable: str, raw: str, expected: object) -> None:
    assert _by_variable(Settings.from_env({variable: raw}))[variable] == expected


@pytest.mark.parametrize(
    ("variable", "raw", "message"),
    [
        ("CXR_PRECISION", "half", "`CXR_PRECISION` must be one of auto, float32, mixed, but got 'half'."),
        ("CXR_PRECISION", "Mixed", "`CXR_PRECISION` must be one of auto, float32, mixed, but got 'Mixed'."),
        ("CXR_FEATURE_CACHE_GB", "lots", "`CXR_FEATURE_CACHE_GB` must be a number of gigabytes >= 0, but got 'lots'."),
        ("CXR_FEATURE_CACHE_GB", "-1", "`CXR_FEATURE_CACHE_GB` must be a number of gigabytes >= 0, but got '-1'."),
        ("CXR_FEATURE_CACHE_GB", "inf", "`CXR_FEATURE_CACHE_GB` must be a number of gigabytes >= 0, but got 'inf'."),
        ("CXR_FEATURE_CACHE_GB", "nan", "`CXR_FEATURE_CACHE_GB` must be a number of gigabytes >= 0, but got 'nan'."),
        (
            "CXR_HEARTBEAT_INTERVAL_S",
            "0",
            "`CXR_HEARTBEAT_INTERVAL_S` must be a whole number of seconds > 0, but got '0'.",
        ),
        (
            "CXR_HEARTBEAT_INTERVAL_S",
            "1.5",
            "`CXR_HEARTBEAT_INTERVAL_S` must be a whole number of seconds > 0, but got '1.5'.",
        ),
        (
            "CXR_HEARTBEAT_GRACE_S",
            "abc",
            "`CXR_HEARTBEAT_GRACE_S` must be a whole number of seconds > 0, but got 'abc'.",
        ),
        ("CXR_HEARTBEAT_GRACE_S", "-5", "`CXR_HEARTBEAT_GRACE_S` must be a whole number of seconds > 0, but got '-5'."),
        ("CXR_EXPORT_TIMEOUT_S", "30m", "`CXR_EXPORT_TIMEOUT_S` must be a whole number of seconds > 0, but got '30m'."),
        ("CXR_ALLOW_EXPORT", "ture", "`CXR_ALLOW_EXPORT` must be one of 1, true, yes, 0, false, no, but got 'ture'."),
    ],
)
def test_a_bad_value_is_one_sentence(monkeypatch: pytest.MonkeyPatch, variable: str, raw: str, message: str) -> None:
    with pytest.raises(SearchError) as caught:
        Settings.from_env({variable: raw})
    assert str(caught.value) == message
    monkeypatch.setenv(variable, raw)
    with pytest.raises(SearchError) as from_environment:
        settings()
    assert str(from_environment.value) == message


def test_the_settings_follow_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CXR_HEARTBEAT_GRACE_S", "7")
    assert settings().heartbeat_grace_s == 7
    assert settings() is settings(), "parsed once per set of values"
    monkeypatch.delenv("CXR_HEARTBEAT_GRACE_S")
    assert settings().heartbeat_grace_s == 120


def test_check_settings_exits_with_the_sentence(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CXR_EXPORT_TIMEOUT_S", "soon")
    with pytest.raises(SystemExit) as caught:
        check_settings()
    assert caught.value.code == 1
    assert (
        capsys.readouterr().err
        == "error: `CXR_EXPORT_TIMEOUT_S` must be a whole number of seconds > 0, but got 'soon'.\n"
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["search.store", "upgrade"],
        ["search.evaluate", "--study", "s"],
        ["search.export", "--study", "s", "--out", "winner"],
        ["search.predict", "--model", "winner", "x.png"],
        ["leaderboard"],
    ],
)
def test_every_command_refuses_a_bad_variable_before_anything_else(tmp_path: Path, argv: list[str]) -> None:
    env = {**os.environ, "CXR_HEARTBEAT_GRACE_S": "abc", "CXR_STORAGE": f"sqlite:///{tmp_path / 'o.db'}"}
    done = subprocess.run(
        [sys.executable, "-m", *argv], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == "error: `CXR_HEARTBEAT_GRACE_S` must be a whole number of seconds > 0, but got 'abc'.\n"
    assert list(tmp_path.iterdir()) == [], "nothing was created"


def test_the_readme_lists_every_variable_with_its_default() -> None:
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## Environment variables") :].split("\n## ", 1)[0]
    cells = [line.split("|")[1:3] for line in section.splitlines() if line.startswith("| `")]
    shown = {variable.strip(" `"): default.strip() for variable, default in cells}
    assert shown == {
        "CXR_STORAGE": "`sqlite:///optuna.db`",
        "CXR_ARTIFACTS_ROOT": "unset",
        "CXR_PRECISION": "`auto`",
        "CXR_FEATURE_CACHE_GB": "`4`",
        "CXR_HEARTBEAT_INTERVAL_S": "`30`",
        "CXR_HEARTBEAT_GRACE_S": "`120`",
        "CXR_ALLOW_EXPORT": "`0`",
        "CXR_EXPORT_TIMEOUT_S": "`1800`",
        "CXR_EXPORT_CACHE": "unset",
    }
    assert shown.keys() == DEFAULTS.keys()

"""Every environment variable the tools read, in one place, parsed and checked up front.

Each field of :class:`Settings` is one variable: its type, its default and what it means. A
command calls :func:`check_settings` first, so a typo in any variable is one sentence and exit
status 1, never a traceback from deep inside a worker. Library code reads :func:`settings`.
An empty value counts as unset (``CXR_X= command`` is how shells and manifests unset things).

Standard library only: the leaderboard imports this and must never load TensorFlow.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from functools import lru_cache
from typing import Any

from search._errors import SearchError

__all__ = ["DEFAULT_STORAGE", "PRECISIONS", "Settings", "check_settings", "settings"]

DEFAULT_STORAGE = "sqlite:///optuna.db"
PRECISIONS = ("auto", "float32", "mixed")
_SWITCHES = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}


def _text(name: str, raw: str) -> str:
    return raw


def _seconds(name: str, raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value <= 0:
        raise SearchError(f"`{name}` must be a whole number of seconds > 0, but got {raw!r}.")
    return value


def _gigabytes(name: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= 0):
        raise SearchError(f"`{name}` must be a number of gigabytes >= 0, but got {raw!r}.")
    return value


def _precision(name: str, raw: str) -> str:
    if raw not in PRECISIONS:
        raise SearchError(f"`{name}` must be one of {', '.join(PRECISIONS)}, but got {raw!r}.")
    return raw


def _switch(name: str, raw: str) -> bool:
    if raw.strip().lower() not in _SWITCHES:
        raise SearchError(f"`{name}` must be one of {', '.join(_SWITCHES)}, but got {raw!r}.")
    return _SWITCHES[raw.strip().lower()]


def _variable(name: str, parse: Callable[[str, str], Any], doc: str) -> dict[str, Any]:
    return {"variable": name, "parse": parse, "doc": doc}


@dataclass(frozen=True)
class Settings:
    """The environment, parsed: one field per variable (``fields(Settings)[i].metadata`` names it)."""

    storage: str = field(
        default=DEFAULT_STORAGE,
        metadata=_variable("CXR_STORAGE", _text, "the results database URL for commands run without `--storage`"),
    )
    artifacts_root: str | None = field(
        default=None,
        metadata=_variable(
            "CXR_ARTIFACTS_ROOT", _text, "the one folder or s3://BUCKET export and the leaderboard read models from"
        ),
    )
    precision: str = field(
        default="auto",
        metadata=_variable("CXR_PRECISION", _precision, "auto, float32 or mixed; auto is mixed on a GPU"),
    )
    feature_cache_gb: float = field(
        default=4.0,
        metadata=_variable(
            "CXR_FEATURE_CACHE_GB", _gigabytes, "the largest cached activations of one key; 0 turns the cache off"
        ),
    )
    heartbeat_interval_s: int = field(
        default=30,
        metadata=_variable("CXR_HEARTBEAT_INTERVAL_S", _seconds, "how often a worker tells the database it is alive"),
    )
    heartbeat_grace_s: int = field(
        default=120,
        metadata=_variable(
            "CXR_HEARTBEAT_GRACE_S", _seconds, "silence after which a worker's trial is failed and retried"
        ),
    )
    allow_export: bool = field(
        default=False,
        metadata=_variable("CXR_ALLOW_EXPORT", _switch, "offer the leaderboard's export buttons (1/true/yes)"),
    )
    export_timeout_s: int = field(
        default=1800,
        metadata=_variable("CXR_EXPORT_TIMEOUT_S", _seconds, "the time limit of one export from the leaderboard"),
    )
    export_cache: str | None = field(
        default=None,
        metadata=_variable(
            "CXR_EXPORT_CACHE", _text, "where the leaderboard keeps finished exports (else a private temp folder)"
        ),
    )

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        """Every variable of ``environ`` parsed; the first bad one raises its sentence."""
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = environ.get(f.metadata["variable"])
            if raw:  # unset and empty both mean the default
                values[f.name] = f.metadata["parse"](f.metadata["variable"], raw)
        return cls(**values)

    @staticmethod
    def variable(name: str) -> str:
        """The environment variable behind field ``name``, e.g. ``CXR_STORAGE`` for ``storage``."""
        return str(next(f.metadata["variable"] for f in fields(Settings) if f.name == name))


_VARIABLES = tuple(str(f.metadata["variable"]) for f in fields(Settings))


def settings() -> Settings:
    """The settings of the current environment (parsed once per distinct set of values).

    Keyed on the values rather than cached once, so a variable changed by a test
    (``monkeypatch.setenv``) or by ``python -m leaderboard`` before it starts the page is seen.
    """
    return _parsed(tuple(os.environ.get(name) for name in _VARIABLES))


@lru_cache(maxsize=16)
def _parsed(values: tuple[str | None, ...]) -> Settings:
    return Settings.from_env({name: value for name, value in zip(_VARIABLES, values, strict=True) if value is not None})


def check_settings() -> Settings:
    """For a command's first line: the settings, or ``error: <sentence>`` on stderr and exit status 1."""
    try:
        return settings()
    except SearchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(1) from None

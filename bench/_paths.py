"""Paths as the benchmarks print them: a reader of docs/benchmarks.md can reproduce them on any machine."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["REPO", "SHARED", "shown"]

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("CXR_SHARED", REPO.parent / "shared"))


def shown(path: Path | str) -> str:
    """``path`` relative to the repository (``./...``) or to the shared data (``../shared/...``);
    any other path as given, since only its owner's machine has it."""
    for base, name in ((REPO, "."), (SHARED, "../shared")):
        try:
            return f"{name}/{Path(path).resolve().relative_to(base.resolve())}"
        except ValueError:
            continue
    return str(path)

"""The leaderboard's export button, without Streamlit: one export per model at a time, a time
limit, and finished archives kept on disk (not in each browser session's memory).

An export evaluates the model once on the test split and writes that row to the results
database, so the page offers it only when started with ``--allow-export``.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cxrdata import atomic_write
from search import Settings, settings
from search.store import STORAGE_VARIABLE

__all__ = ["ALLOW_VARIABLE", "ExportResult", "export_allowed", "export_folder", "export_timeout_s", "run_export"]

ALLOW_VARIABLE = Settings.variable("allow_export")


def export_allowed(argv: list[str]) -> bool:
    """``--allow-export`` after ``streamlit run app.py --``, or ``$CXR_ALLOW_EXPORT=1``."""
    return "--allow-export" in argv or settings().allow_export


def export_timeout_s() -> int:
    return settings().export_timeout_s


def export_folder() -> Path:
    """Finished archives and the per-model locks: ``$CXR_EXPORT_CACHE``, else a private temp folder."""
    folder = Path(settings().export_cache or Path(tempfile.gettempdir()) / f"cxr-exports-{os.getuid()}")
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    return folder


@dataclass(frozen=True)
class ExportResult:
    archive: Path | None  # the .zip, or None when the export did not run or failed
    message: str | None = None  # why not, in one sentence
    cached: bool = False  # the study has not changed since this archive was made


def _stem(study: str, choice: list[str], version: str) -> str:
    """A file name of the export's own: readable, and unique to the study, choice and results."""
    digest = hashlib.sha256("\0".join([study, *choice, version]).encode()).hexdigest()[:16]
    readable = re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{study}-{'-'.join(choice)}")[:60].strip("-.")
    return f"{readable}-{digest}"


def run_export(url: str, study: str, choice: list[str], version: str, *, timeout_s: int | None = None) -> ExportResult:
    """Run ``search.export`` in a child process (the page never loads TensorFlow) and zip its folder.

    ``version`` changes whenever the study's results do, so an archive is reused until then.
    The URL reaches the child through the environment, never its command line (``ps``).
    """
    folder, stem = export_folder(), _stem(study, choice, version)
    archive = folder / f"{stem}.zip"
    if archive.is_file():
        return ExportResult(archive, cached=True)
    with (folder / f"{stem}.lock").open("w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return ExportResult(None, "This export is already running (started from another page); wait for it.")
        if archive.is_file():  # finished by the holder of the lock while this one waited to check
            return ExportResult(archive, cached=True)
        return _export(url, study, choice, archive, timeout_s or export_timeout_s())


def _export(url: str, study: str, choice: list[str], archive: Path, timeout_s: int) -> ExportResult:
    with tempfile.TemporaryDirectory(dir=archive.parent) as tmp:
        out = Path(tmp) / "export"
        env = {**os.environ, STORAGE_VARIABLE: url}
        command = [sys.executable, "-m", "search.export", "--study", study, *choice, "--out", str(out)]
        try:
            done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout_s, check=False)
        except subprocess.TimeoutExpired:
            return ExportResult(
                None, f"An export must finish within {timeout_s} s (CXR_EXPORT_TIMEOUT_S), but this one did not."
            )
        if done.returncode != 0:
            return ExportResult(None, (done.stderr.strip().splitlines() or ["The export failed."])[-1])
        with atomic_write(archive) as staging:  # another page sees no archive or the whole one
            shutil.make_archive(str(staging.with_suffix("")), "zip", out)  # it appends the .zip back
    return ExportResult(archive)

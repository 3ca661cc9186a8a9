"""Writing a file or a folder so that a reader finds the old one, none, or the whole new one.

Caches are shared by worker processes (and by machines, on a shared file system), and a reader
must never map half an array. So everything is written under a hidden name beside the target
(the same file system, so the last step is a rename), flushed to disk, and renamed into place
only when the writing finished without an exception.
"""

from __future__ import annotations

import fcntl
import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

__all__ = ["atomic_write", "one_at_a_time"]


@contextmanager
def atomic_write(target: str | os.PathLike[str], *, directory: bool = False) -> Iterator[Path]:
    """Yield a new path beside ``target`` to write to; it becomes ``target`` when the block ends.

    A file replaces an existing ``target``. A folder (``directory=True``) does not: a folder
    already there was written by another worker for the same key, so it is kept and this one
    dropped. An exception in the block removes what was written and leaves ``target`` as it was.
    The staging path keeps ``target``'s suffix (``np.save`` would otherwise append ``.npy``).
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = _reserve(target, directory)
    try:
        yield staging
        _flush(staging)
        _commit(staging, target, directory)
    except BaseException:
        _remove(staging)
        raise


@contextmanager
def one_at_a_time(target: str | os.PathLike[str]) -> Iterator[None]:
    """Hold an exclusive lock on ``target.lock`` for the block.

    Workers that start together on one machine would each compute the same cache entry (the
    lung masks take 20 s, a region's images as long); with this the first computes it and the
    others, once they get the lock, find it written. Re-check for the entry inside the block.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.with_name(f"{target.name}.lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _reserve(target: Path, directory: bool) -> Path:
    """A hidden, unused name beside ``target``, created with the permissions a plain write gives."""
    staging = target.with_name(f".{target.name}.{secrets.token_hex(8)}.tmp{target.suffix}")
    if directory:
        staging.mkdir()
    else:
        os.close(os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    return staging


def _flush(staging: Path) -> None:
    """The data on disk before the rename, so that after a power cut the name never holds empty blocks."""
    if staging.is_dir():
        for path in sorted(staging.rglob("*")):
            if path.is_file():
                _fsync(path)
    _fsync(staging)


def _commit(staging: Path, target: Path, directory: bool) -> None:
    if not directory:
        staging.replace(target)
    else:
        try:
            staging.rename(target)
        except OSError:
            if not target.is_dir():
                raise
            _remove(staging)  # another writer's folder for the same key got there first
            return
    _fsync(target.parent)  # the rename itself


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        if path.is_dir():
            with suppress(OSError):  # some file systems cannot sync a folder; the rename still happened
                os.fsync(fd)
        else:
            os.fsync(fd)
    finally:
        os.close(fd)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)

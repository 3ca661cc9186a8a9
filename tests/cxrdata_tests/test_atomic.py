"""atomic_write: a reader finds the old file or folder, none, or the whole new one, never a part."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cxrdata import atomic_write
from tests.conftest import REPO


class CrashError(Exception):
    pass


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.mark.parametrize("old", [None, b"old and whole"])
def test_an_exception_mid_write_leaves_the_old_file_or_none(tmp_path: Path, old: bytes | None) -> None:
    target = tmp_path / "cache.bin"
    if old is not None:
        target.write_bytes(old)
    with pytest.raises(CrashError), atomic_write(target) as staging:
        staging.write_bytes(b"half of the new")
        raise CrashError
    assert (target.read_bytes() if target.exists() else None) == old
    assert _leftovers(tmp_path) == []


def test_a_process_killed_mid_write_leaves_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "cache.bin"
    target.write_bytes(b"old and whole")
    child = (
        "import os, signal, sys\n"
        "from cxrdata import atomic_write\n"
        "with atomic_write(sys.argv[1]) as staging:\n"
        "    staging.write_bytes(b'half of the new')\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    done = subprocess.run([sys.executable, "-c", child, str(target)], cwd=REPO, check=False)
    assert done.returncode == -signal.SIGKILL
    assert target.read_bytes() == b"old and whole"


def test_a_finished_write_replaces_the_file_with_plain_permissions(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "masks.npy"
    for value in (1, 2):
        with atomic_write(target) as staging:
            np.save(staging, np.full(3, value))  # keeps the name: the staging path ends in .npy
    assert np.load(target).tolist() == [2, 2, 2]
    plain = tmp_path / "plain"
    plain.write_bytes(b"")
    assert target.stat().st_mode == plain.stat().st_mode
    assert _leftovers(target.parent) == []


def test_a_folder_appears_whole_and_the_first_one_is_kept(tmp_path: Path) -> None:
    target = tmp_path / "features-key"
    with pytest.raises(CrashError), atomic_write(target, directory=True) as staging:
        (staging / "0.npy").write_bytes(b"part")
        raise CrashError
    assert not target.exists()
    for content in (b"first", b"second"):  # the second writer finishes after the first
        with atomic_write(target, directory=True) as staging:
            (staging / "0.npy").write_bytes(content)
            (staging / "1.npy").write_bytes(content)
    assert sorted(p.name for p in target.iterdir()) == ["0.npy", "1.npy"]
    assert (target / "1.npy").read_bytes() == b"first"
    assert _leftovers(tmp_path) == []


def test_a_folder_that_cannot_be_placed_is_an_error(tmp_path: Path) -> None:
    target = tmp_path / "images-key"
    target.write_bytes(b"a file where the folder goes")
    with pytest.raises(OSError), atomic_write(target, directory=True) as staging:
        (staging / "images.npy").write_bytes(b"x")
    assert target.read_bytes() == b"a file where the folder goes"
    assert _leftovers(tmp_path) == []
    assert [p.name for p in tmp_path.iterdir()] == ["images-key"]

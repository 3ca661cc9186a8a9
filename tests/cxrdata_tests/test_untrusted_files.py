"""Files a scan must not trust: FIFOs, devices, huge files, foreign formats, symlinks out of the root.

Each is listed in ``Manifest.excluded`` with the rule it breaks; none stops the scan, hangs
it, or reaches a decoder other than PNG and JPEG.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import EpsImagePlugin, Image

from cxrdata import ImageDecodeError, Manifest, decode_image, scan
from cxrdata.synthetic import SyntheticSpec, make_synthetic_dataset
from tests.conftest import REPO

EPS = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 24 24\nshowpage\n%%EOF\n"


def _png(path: Path, value: int = 90, size: int = 24) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(value)
    Image.fromarray(rng.integers(0, 255, (size, size), dtype=np.uint8)).save(path)


def _plain(root: Path) -> Path:
    for c, label in enumerate(("COVID", "Normal")):
        for i in range(3):
            _png(root / label / f"{i}.png", value=10 * c + i)
    return root


def _reasons(m: Manifest) -> dict[str, str]:
    return {x.path: x.reason for x in m.excluded}


def _release(fifo: Path) -> None:
    """Give a reader blocked on ``fifo`` an end of file, so that a hung scan can finish."""
    with contextlib.suppress(OSError):  # no reader is waiting at the moment
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))


def _scan_within(root: Path, fifo: Path, seconds: float = 20) -> Manifest:
    """Scan in a thread; fail (rather than hang the test run) when it blocks on ``fifo``."""
    done: list[Manifest | BaseException] = []

    def run() -> None:
        try:
            done.append(scan(root))
        except BaseException as exc:
            done.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout=seconds)
    hung = thread.is_alive()
    while thread.is_alive():
        _release(fifo)
        thread.join(timeout=0.1)
    assert not hung, f"the scan was still blocked on the FIFO '{fifo.name}' after {seconds} s"
    if isinstance(done[0], BaseException):
        raise done[0]
    return done[0]


# --- Only regular files are read ----------------------------------------------------------


def test_a_fifo_named_png_is_excluded_not_waited_on(tmp_path: Path) -> None:
    root = _plain(tmp_path)
    fifo = root / "COVID" / "x.png"
    os.mkfifo(fifo)
    m = _scan_within(root, fifo)
    assert m.counts() == {"COVID": 3, "Normal": 3}
    assert _reasons(m) == {"COVID/x.png": "must be a regular file, but is a FIFO"}


def test_a_symlink_to_a_fifo_inside_the_root_is_excluded(tmp_path: Path) -> None:
    root = _plain(tmp_path)
    fifo = root / "pipe"
    os.mkfifo(fifo)
    (root / "COVID" / "x.png").symlink_to(fifo)
    m = _scan_within(root, fifo)
    assert _reasons(m) == {"COVID/x.png": "must be a regular file, but is a FIFO"}


def test_a_fifo_mask_is_reported_and_the_image_kept(tmp_path: Path) -> None:
    root = make_synthetic_dataset(tmp_path, SyntheticSpec(per_class=2, size=32))
    fifo = root / "COVID" / "masks" / "COVID-1.png"
    fifo.unlink()
    os.mkfifo(fifo)
    m = _scan_within(root, fifo)
    assert m.counts()["COVID"] == 2
    assert next(e for e in m.entries if e.path == "COVID/images/COVID-1.png").mask is None
    assert _reasons(m) == {"COVID/masks/COVID-1.png": "mask must be a regular file, but is a FIFO"}


def test_a_character_device_is_not_read(tmp_path: Path) -> None:
    (tmp_path / "zero.png").symlink_to("/dev/zero")
    with pytest.raises(ImageDecodeError, match=r"^must be a regular file, but is a character device$"):
        decode_image(tmp_path / "zero.png")


def test_a_folder_named_like_an_image_is_not_read(tmp_path: Path) -> None:
    (tmp_path / "x.png").mkdir()
    with pytest.raises(ImageDecodeError, match=r"^must be a regular file, but is a folder$"):
        decode_image(tmp_path / "x.png")


_SCAN_UNDER_A_MEMORY_LIMIT = """
import json, resource, sys
resource.setrlimit(resource.RLIMIT_DATA, (4 * 1024**3, 4 * 1024**3))
from cxrdata import scan
m = scan(sys.argv[1])
print(json.dumps({"counts": m.counts(), "excluded": {x.path: x.reason for x in m.excluded}}))
"""


def test_a_symlink_to_dev_zero_ends_the_scan_with_an_exclusion(tmp_path: Path) -> None:
    # In a child process with a memory limit: reading /dev/zero whole would exhaust memory.
    root = _plain(tmp_path)
    (root / "COVID" / "zero.png").symlink_to("/dev/zero")
    done = subprocess.run(
        [sys.executable, "-c", _SCAN_UNDER_A_MEMORY_LIMIT, str(root)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    assert result["counts"] == {"COVID": 3, "Normal": 3}
    assert result["excluded"] == {"COVID/zero.png": "is a symlink that leads outside the dataset root (-> /dev/zero)"}


# --- A size cap, images and masks alike ---------------------------------------------------


def test_a_file_over_the_size_cap_is_excluded(tmp_path: Path) -> None:
    root = _plain(tmp_path)
    _png(root / "COVID" / "big.png", size=256)  # ~65 KiB of noise; the others are ~1 KiB
    m = scan(root, max_file_bytes=16 * 1024)
    assert m.counts() == {"COVID": 3, "Normal": 3}
    reasons = _reasons(m)
    assert list(reasons) == ["COVID/big.png"]
    assert reasons["COVID/big.png"].startswith("must be at most 16 KiB, but is 64.")
    assert reasons["COVID/big.png"].endswith(" KiB")


def test_decode_image_has_the_same_cap(tmp_path: Path) -> None:
    from cxrdata._decode import MAX_FILE_BYTES

    assert MAX_FILE_BYTES == 64 * 1024**2
    path = tmp_path / "x.png"
    _png(path, size=64)
    size = path.stat().st_size
    assert 1024 < size < 10 * 1024
    with pytest.raises(ImageDecodeError, match=rf"^must be at most 1 KiB, but is {size / 1024:.1f} KiB$"):
        decode_image(path, max_bytes=1024)


def test_a_mask_over_the_size_cap_is_excluded_and_the_image_kept(tmp_path: Path) -> None:
    root = make_synthetic_dataset(tmp_path, SyntheticSpec(per_class=2, size=32))
    _png(root / "COVID" / "masks" / "COVID-1.png", size=256)
    m = scan(root, max_file_bytes=16 * 1024)
    assert m.counts()["COVID"] == 2
    assert next(e for e in m.entries if e.path == "COVID/images/COVID-1.png").mask is None
    assert _reasons(m)["COVID/masks/COVID-1.png"].startswith("mask must be at most 16 KiB, but is ")


def test_the_hash_is_of_the_bytes_read(tmp_path: Path) -> None:
    import hashlib

    root = _plain(tmp_path)
    m = scan(root)
    assert all(e.sha256 == hashlib.sha256((root / e.path).read_bytes()).hexdigest() for e in m.entries)


# --- Only the PNG and JPEG decoders run --------------------------------------------------


@pytest.fixture
def eps_opened(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records every call of Pillow's EPS plugin (which would start Ghostscript)."""
    calls: list[str] = []

    def record(self: EpsImagePlugin.EpsImageFile) -> None:
        calls.append("EpsImageFile._open")
        raise SyntaxError("the EPS plugin must not run")

    monkeypatch.setattr(EpsImagePlugin.EpsImageFile, "_open", record)
    return calls


def test_an_eps_named_png_never_reaches_the_eps_plugin(tmp_path: Path, eps_opened: list[str]) -> None:
    root = _plain(tmp_path)
    (root / "COVID" / "figure.png").write_bytes(EPS)
    m = scan(root)
    assert eps_opened == []
    assert _reasons(m) == {"COVID/figure.png": "EPS image; only PNG and JPEG are read"}


def test_decode_image_never_reaches_the_eps_plugin(tmp_path: Path, eps_opened: list[str]) -> None:
    (tmp_path / "figure.jpg").write_bytes(EPS)
    with pytest.raises(ImageDecodeError) as info:
        decode_image(tmp_path / "figure.jpg")
    assert eps_opened == []
    assert str(info.value) == "EPS image; only PNG and JPEG are read"


# --- Symlinks: inside the root they work, out of it they are reported --------------------


def test_symlinks_inside_the_root_keep_working(tmp_path: Path) -> None:
    root = _plain(tmp_path)
    _png(root / "originals" / "a.png", value=77)
    (root / "COVID" / "linked.png").symlink_to(root / "originals" / "a.png")
    (root / "Normal" / "relative.png").symlink_to(Path("..") / "originals" / "a.png")
    m = scan(root)
    assert m.counts() == {"COVID": 4, "Normal": 4}
    assert m.excluded == ()


def test_a_symlink_out_of_the_root_is_excluded_with_its_target(tmp_path: Path) -> None:
    root = _plain(tmp_path / "data")
    _png(tmp_path / "elsewhere" / "a.png", value=77)
    (root / "COVID" / "linked.png").symlink_to(tmp_path / "elsewhere" / "a.png")
    m = scan(root)
    assert m.counts() == {"COVID": 3, "Normal": 3}
    target = (tmp_path / "elsewhere" / "a.png").resolve()
    assert _reasons(m) == {"COVID/linked.png": f"is a symlink that leads outside the dataset root (-> {target})"}


def test_a_class_folder_linked_out_of_the_root_is_excluded_once(tmp_path: Path) -> None:
    root = _plain(tmp_path / "data")
    outside = _plain(tmp_path / "elsewhere") / "Normal"
    (root / "Viral Pneumonia").symlink_to(outside, target_is_directory=True)
    m = scan(root)
    assert m.counts() == {"COVID": 3, "Normal": 3}
    assert _reasons(m) == {
        "Viral Pneumonia": f"is a symlink that leads outside the dataset root (-> {outside.resolve()})"
    }


def test_a_kaggle_class_folder_linked_out_of_the_root_is_named(tmp_path: Path) -> None:
    root = make_synthetic_dataset(tmp_path / "data", SyntheticSpec(per_class=2, size=32))
    outside = tmp_path / "Normal"
    (root / "Normal").rename(outside)
    (root / "Normal").symlink_to(outside, target_is_directory=True)
    m = scan(root)
    assert "Normal" not in m.counts()
    assert _reasons(m) == {"Normal": f"is a symlink that leads outside the dataset root (-> {outside.resolve()})"}


def test_an_images_folder_linked_out_of_the_root_is_named(tmp_path: Path) -> None:
    root = make_synthetic_dataset(tmp_path / "data", SyntheticSpec(per_class=2, size=32))
    outside = tmp_path / "images"
    (root / "Normal" / "images").rename(outside)
    (root / "Normal" / "images").symlink_to(outside, target_is_directory=True)
    m = scan(root)
    assert "Normal" not in m.counts()
    assert _reasons(m) == {
        "Normal/images": f"is a symlink that leads outside the dataset root (-> {outside.resolve()})"
    }


def test_a_mask_linked_out_of_the_root_is_excluded_and_the_image_kept(tmp_path: Path) -> None:
    root = make_synthetic_dataset(tmp_path / "data", SyntheticSpec(per_class=2, size=32))
    mask = root / "COVID" / "masks" / "COVID-1.png"
    outside = tmp_path / "mask.png"
    mask.rename(outside)
    mask.symlink_to(outside)
    m = scan(root)
    assert next(e for e in m.entries if e.path == "COVID/images/COVID-1.png").mask is None
    assert _reasons(m) == {
        "COVID/masks/COVID-1.png": f"mask is a symlink that leads outside the dataset root (-> {outside.resolve()})"
    }


def test_a_root_given_through_a_symlink_is_inside_itself(tmp_path: Path) -> None:
    _plain(tmp_path / "data")
    (tmp_path / "link").symlink_to(tmp_path / "data", target_is_directory=True)
    m = scan(tmp_path / "link")
    assert m.counts() == {"COVID": 3, "Normal": 3}
    assert m.excluded == ()


def test_a_symlink_loop_is_excluded(tmp_path: Path) -> None:
    root = _plain(tmp_path)
    (root / "COVID" / "loop.png").symlink_to(root / "COVID" / "loop.png")
    started = time.monotonic()
    m = scan(root)
    assert time.monotonic() - started < 30
    assert _reasons(m)["COVID/loop.png"].startswith("is a symlink that cannot be followed")

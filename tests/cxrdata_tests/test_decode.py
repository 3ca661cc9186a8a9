"""Every image mode a user may have decodes to the same uint8 RGB; bad files give a reason."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cxrdata import ImageDecodeError, decode_image

SIZE = 32


def _reference() -> np.ndarray:
    """A gray image using the full 0..255 range, asymmetric so rotations show."""
    y, x = np.mgrid[0:SIZE, 0:SIZE]
    gray = (x * 5 + y * 3) % 256
    gray[0, 0], gray[-1, -1] = 0, 255
    gray[2:6, 20:30] = 255
    return np.asarray(gray, dtype=np.uint8)


REF = _reference()
REF_RGB = np.repeat(REF[..., None], 3, axis=2)


def _gray(path: Path) -> None:
    Image.fromarray(REF).save(path)


def _rgb(path: Path) -> None:
    Image.fromarray(REF_RGB).save(path)


def _rgba(path: Path) -> None:
    Image.fromarray(np.dstack([REF_RGB, np.full_like(REF, 255)])).save(path)


def _gray_alpha(path: Path) -> None:
    Image.fromarray(np.dstack([REF, np.full_like(REF, 255)]), mode="LA").save(path)


def _palette(path: Path) -> None:
    Image.fromarray(REF).convert("P").save(path)


def _gray16(path: Path) -> None:
    Image.fromarray(REF.astype(np.uint16) * 257).save(path)


def _gray12_in_16(path: Path) -> None:
    # A 12-bit detector stored in a 16-bit PNG: values 0..4095 must still fill 0..255.
    Image.fromarray((REF.astype(np.float64) * 4095 / 255).round().astype(np.uint16)).save(path)


def _jpeg_gray(path: Path) -> None:
    Image.fromarray(REF).save(path, "JPEG", quality=100)


def _jpeg_cmyk(path: Path) -> None:
    Image.fromarray(REF_RGB).convert("CMYK").save(path, "JPEG", quality=100)


def _exif_rotated(path: Path) -> None:
    stored = Image.fromarray(REF).transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    stored.save(path, exif=exif)


@pytest.mark.parametrize(
    ("writer", "suffix", "tolerance"),
    [
        (_gray, ".png", 0),
        (_rgb, ".png", 0),
        (_rgba, ".png", 0),
        (_gray_alpha, ".png", 0),
        (_palette, ".png", 0),
        (_gray16, ".png", 0),
        (_gray12_in_16, ".png", 1),
        (_jpeg_gray, ".jpg", 6),
        (_jpeg_cmyk, ".jpeg", 8),
        (_exif_rotated, ".png", 0),
    ],
    ids=lambda v: getattr(v, "__name__", str(v)),
)
def test_modes_decode_to_the_same_rgb(
    tmp_path: Path, writer: Callable[[Path], None], suffix: str, tolerance: int
) -> None:
    path = tmp_path / f"image{suffix}"
    writer(path)
    rgb = decode_image(path)
    assert rgb.dtype == np.uint8
    assert rgb.shape == (SIZE, SIZE, 3)
    assert np.abs(rgb.astype(int) - REF_RGB.astype(int)).max() <= tolerance


def test_transparent_pixels_become_black(tmp_path: Path) -> None:
    rgba = np.dstack([REF_RGB, np.zeros_like(REF)])
    Image.fromarray(rgba).save(tmp_path / "clear.png")
    assert decode_image(tmp_path / "clear.png").max() == 0


def _empty(path: Path) -> None:
    path.write_bytes(b"")


def _text(path: Path) -> None:
    path.write_text("patient 12, chest PA\n")


def _truncated(path: Path) -> None:
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8)).save(path)
    path.write_bytes(path.read_bytes()[:600])


def _truncated_jpeg(path: Path) -> None:
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8)).save(path, "JPEG")
    path.write_bytes(path.read_bytes()[:500])


def _bmp_named_png(path: Path) -> None:
    Image.fromarray(REF).save(path, "BMP")


def _bomb(path: Path) -> None:
    Image.new("1", (9000, 9000)).save(path)  # a few kB on disk, 81 megapixels decoded


@pytest.mark.parametrize(
    ("writer", "reason"),
    [
        (_empty, "empty file (0 bytes)"),
        (_text, "not a PNG or JPEG image (the content cannot be identified)"),
        (_truncated, "corrupt or truncated image data"),
        (_truncated_jpeg, "corrupt or truncated image data"),
        (_bmp_named_png, "BMP image; only PNG and JPEG are read"),
        (_bomb, "image of 9000x9000 pixels exceeds the limit of 67108864 pixels (possible decompression bomb)"),
    ],
    ids=lambda v: getattr(v, "__name__", str(v)),
)
def test_bad_files_raise_with_the_reason(tmp_path: Path, writer: Callable[[Path], None], reason: str) -> None:
    path = tmp_path / "bad.png"
    writer(path)
    with pytest.raises(ImageDecodeError) as info:
        decode_image(path)
    assert str(info.value).startswith(reason)

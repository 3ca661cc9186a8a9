"""Decode any PNG/JPEG a user may have into the same uint8 RGB array.

Pillow is used rather than ``tf.io.decode_image`` because it reads 16-bit grayscale, CMYK
JPEG and EXIF orientation, and reports truncation and decompression bombs before the
pixels are allocated.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from cxrdata._errors import ImageDecodeError

__all__ = [
    "IMAGE_SUFFIXES",
    "MAX_FILE_BYTES",
    "MAX_PIXELS",
    "FileBytes",
    "decode_image",
    "decode_mask",
    "format_size",
    "image_info",
    "read_file",
]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")

# Only these Pillow decoders ever see a file's bytes: every other plugin (EPS runs
# Ghostscript) is never invoked, whatever the file is named. MPO, the multi-picture JPEG of
# some cameras, comes through the JPEG decoder.
_FORMATS = ("PNG", "JPEG")
_ACCEPTED = ("PNG", "JPEG", "MPO")

# 8192 x 8192: every real radiograph fits (a 43 cm detector at 0.1 mm is 4300 px), while a
# crafted PNG that claims more pixels is refused before it is allocated.
MAX_PIXELS = 8192 * 8192

# A 16-bit 8192 x 8192 PNG stored without compression is 128 MiB, but real radiographs
# compress to well under 64 MiB; the cap keeps a huge file from exhausting memory.
MAX_FILE_BYTES = 64 * 1024**2

_CHUNK = 1024**2

_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


@dataclass(frozen=True)
class FileBytes:
    """A file's content, read once, and its SHA-256."""

    data: bytes
    sha256: str


def format_size(n: int) -> str:
    """``67108864`` -> ``'64 MiB'``, ``1288490189`` -> ``'1.2 GiB'``."""
    value, unit = float(n), "bytes"
    for larger in ("KiB", "MiB", "GiB", "TiB"):
        if value < 1024:
            break
        value, unit = value / 1024, larger
    return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"


def _check_stat(st: os.stat_result, max_bytes: int) -> None:
    if not stat.S_ISREG(st.st_mode):
        kind = next((name for test, name in _KINDS if test(st.st_mode)), "not a regular file")
        raise ImageDecodeError(f"must be a regular file, but is {kind}")
    if st.st_size > max_bytes:
        raise ImageDecodeError(f"must be at most {format_size(max_bytes)}, but is {format_size(st.st_size)}")


def _nonblocking(path: str, flags: int) -> int:
    # Should the file be swapped for a FIFO after the stat, opening it does not wait for a writer.
    return os.open(path, flags | os.O_NONBLOCK)


def read_file(path: str | Path, *, max_bytes: int = MAX_FILE_BYTES) -> FileBytes:
    """Read a regular file of at most ``max_bytes`` once, in chunks, hashing while reading.

    Symlinks are followed; what they lead to must be a regular file. Raises
    :class:`ImageDecodeError` naming the rule otherwise, and :class:`OSError` when the file
    cannot be read at all.
    """
    path = os.fspath(path)
    _check_stat(Path(path).stat(), max_bytes)
    digest = hashlib.sha256()
    chunks: list[bytes] = []
    total = 0
    with open(path, "rb", opener=_nonblocking) as handle:  # open(), as Path.open() takes no opener
        _check_stat(os.fstat(handle.fileno()), max_bytes)
        while chunk := handle.read(_CHUNK):
            total += len(chunk)
            if total > max_bytes:  # it grew since the stat
                raise ImageDecodeError(f"must be at most {format_size(max_bytes)}, but grew past that while being read")
            digest.update(chunk)
            chunks.append(chunk)
    return FileBytes(b"".join(chunks), digest.hexdigest())


def _announces(prefix: bytes, fmt: str) -> bool:
    accept = Image.OPEN[fmt][1]
    try:
        return accept is not None and bool(accept(prefix))
    except Exception:  # a signature check that trips on a short prefix names nothing
        return False


def _sniff(prefix: bytes) -> str | None:
    """The format a file's first bytes announce, for the message: only signature checks run."""
    Image.init()
    return next((f for f in Image.ID if _announces(prefix, f)), None)


def _open(data: bytes) -> Image.Image:
    if not data:
        raise ImageDecodeError("empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=_FORMATS)
            width, height = image.size
            if width * height > MAX_PIXELS:
                raise ImageDecodeError(
                    f"image of {width}x{height} pixels exceeds the limit of {MAX_PIXELS} "
                    "pixels (possible decompression bomb)"
                )
            if width == 0 or height == 0:
                raise ImageDecodeError(f"image has no pixels ({width}x{height})")
            image.load()
    except ImageDecodeError:
        raise
    except UnidentifiedImageError:
        found = _sniff(data[:16])
        if found is not None:
            raise ImageDecodeError(f"{found} image; only PNG and JPEG are read") from None
        raise ImageDecodeError("not a PNG or JPEG image (the content cannot be identified)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageDecodeError(f"decompression bomb refused ({exc})") from None
    except (OSError, SyntaxError, ValueError) as exc:
        # Pillow reports truncated or corrupt data as OSError ("image file is truncated").
        raise ImageDecodeError(f"corrupt or truncated image data ({exc})") from None
    if image.format not in _ACCEPTED:
        raise ImageDecodeError(f"{image.format} image; only PNG and JPEG are read")
    return image


def _to_rgb(image: Image.Image) -> np.ndarray:
    image = ImageOps.exif_transpose(image) or image
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        # High bit depth: stretch the image's own range to 0..255. The nominal range (65535)
        # would turn common 10/12-bit radiographs nearly black.
        data = np.asarray(image, dtype=np.float64)
        low, high = float(data.min()), float(data.max())
        scale = 255.0 / (high - low) if high > low else 0.0
        gray = np.round((data - low) * scale).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    elif mode == "PA":
        image = image.convert("RGBA")
    if image.mode in ("LA", "RGBA", "La", "RGBa"):
        # Transparent pixels become black, the colour of a radiograph's background.
        background = Image.new("RGBA", image.size, (0, 0, 0, 255))
        image = Image.alpha_composite(background, image.convert("RGBA"))
    return np.asarray(image.convert("RGB"), dtype=np.uint8)


def decode_image(path: str | Path, *, max_bytes: int = MAX_FILE_BYTES) -> np.ndarray:
    """Return the image at ``path`` as a ``(height, width, 3)`` uint8 RGB array.

    Raises :class:`ImageDecodeError` with the reason when the file is not a regular file,
    larger than ``max_bytes``, empty, truncated, not an image, not PNG/JPEG, or larger than
    :data:`MAX_PIXELS`.
    """
    with _open(read_file(path, max_bytes=max_bytes).data) as image:
        return _to_rgb(image)


def decode_mask(path: str | Path, *, max_bytes: int = MAX_FILE_BYTES) -> np.ndarray:
    """Return a lung mask as a ``(height, width)`` bool array (any non-black pixel is lung)."""
    rgb = decode_image(path, max_bytes=max_bytes)
    lung: np.ndarray = rgb.max(axis=2) > 127
    return lung


def image_info(data: bytes) -> tuple[np.ndarray, str]:
    """Decode a file's bytes (see :func:`read_file`) and also return the original Pillow mode."""
    with _open(data) as image:
        mode = image.mode
        return _to_rgb(image), mode

"""Decode any PNG/JPEG a user may have into the same uint8 RGB array.

Pillow is used rather than ``tf.io.decode_image`` because it reads 16-bit grayscale, CMYK
JPEG and EXIF orientation, and reports truncation and decompression bombs before the
pixels are allocated.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from cxrdata._errors import ImageDecodeError

__all__ = ["IMAGE_SUFFIXES", "MAX_PIXELS", "decode_image", "decode_mask", "image_info"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")

# 8192 x 8192: every real radiograph fits (a 43 cm detector at 0.1 mm is 4300 px), while a
# crafted PNG that claims more pixels is refused before it is allocated.
MAX_PIXELS = 8192 * 8192


def _open(path: Path) -> Image.Image:
    if path.stat().st_size == 0:
        raise ImageDecodeError("empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(path)
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
        raise ImageDecodeError("not a PNG or JPEG image (the content cannot be identified)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageDecodeError(f"decompression bomb refused ({exc})") from None
    except (OSError, SyntaxError, ValueError) as exc:
        # Pillow reports truncated or corrupt data as OSError ("image file is truncated").
        raise ImageDecodeError(f"corrupt or truncated image data ({exc})") from None
    if image.format not in ("PNG", "JPEG", "MPO"):
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


def decode_image(path: str | Path) -> np.ndarray:
    """Return the image at ``path`` as a ``(height, width, 3)`` uint8 RGB array.

    Raises :class:`ImageDecodeError` with the reason when the file is empty, truncated,
    not an image, not PNG/JPEG, or larger than :data:`MAX_PIXELS`.
    """
    with _open(Path(path)) as image:
        return _to_rgb(image)


def decode_mask(path: str | Path) -> np.ndarray:
    """Return a lung mask as a ``(height, width)`` bool array (any non-black pixel is lung)."""
    rgb = decode_image(path)
    lung: np.ndarray = rgb.max(axis=2) > 127
    return lung


def image_info(path: str | Path) -> tuple[np.ndarray, str]:
    """Decode ``path`` and also return its original Pillow mode (for the dataset report)."""
    with _open(Path(path)) as image:
        mode = image.mode
        return _to_rgb(image), mode

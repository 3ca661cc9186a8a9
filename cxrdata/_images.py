"""Decode and resize every image of a manifest once per (image size, border crop).

The result is a pair of uint8 arrays (images and lung masks) that every trial with the same
image size shares. With a cache folder they live on disk as ``.npy`` files read through a
memory map, written atomically so concurrent workers never see half a cache.
"""

from __future__ import annotations

import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from cxrdata._atomic import atomic_write
from cxrdata._decode import decode_image, decode_mask
from cxrdata._errors import ImageDecodeError
from cxrdata._manifest import Manifest

__all__ = ["ImageArrays", "check_crop", "check_image_size", "load_images", "prepare_image"]

_CACHE_VERSION = "1"


@dataclass
class ImageArrays:
    """Every manifest entry at one size: ``images[i]`` belongs to ``manifest.entries[i]``."""

    images: np.ndarray  # (N, S, S, 3) uint8
    masks: np.ndarray  # (N, S, S, 1) uint8, 1 = lung
    has_mask: np.ndarray  # (N,) bool
    valid: np.ndarray  # (N,) bool: False where the file changed and no longer decodes
    failures: list[tuple[str, str]] = field(default_factory=list)

    @property
    def image_size(self) -> int:
        return int(self.images.shape[1])


def check_image_size(image_size: int) -> int:
    if not isinstance(image_size, int) or isinstance(image_size, bool) or not 16 <= image_size <= 2048:
        raise ValueError(f"`16 <= image_size <= 2048` must hold for a whole number of pixels, but got {image_size!r}.")
    return image_size


def check_crop(crop: float) -> float:
    if not 0.0 <= crop < 0.5:
        raise ValueError(f"`0 <= crop < 0.5` must hold (the fraction cut from each side), but got crop={crop}.")
    return float(crop)


def _crop_box(width: int, height: int, crop: float) -> tuple[int, int, int, int]:
    dx, dy = round(width * crop), round(height * crop)
    return dx, dy, width - dx, height - dy


def _resize(rgb: np.ndarray, size: int, crop: float, resample: Image.Resampling) -> Image.Image:
    image = Image.fromarray(rgb)
    if crop:
        image = image.crop(_crop_box(image.width, image.height, crop))
    return image.resize((size, size), resample)


def prepare_image(rgb: np.ndarray, image_size: int, crop: float = 0.0) -> np.ndarray:
    """Border-crop and resize one decoded image exactly as training did (uint8 RGB out)."""
    return np.asarray(_resize(rgb, check_image_size(image_size), check_crop(crop), Image.Resampling.BILINEAR))


def _one(args: tuple[Path, Path | None, int, float]) -> tuple[np.ndarray | None, np.ndarray | None, str | None]:
    path, mask_path, size, crop = args
    try:
        rgb = decode_image(path)
    except (ImageDecodeError, OSError) as exc:
        return None, None, str(exc)
    image = prepare_image(rgb, size, crop)
    mask = None
    if mask_path is not None:
        try:
            lung = decode_mask(mask_path).astype(np.uint8) * 255
            # Masks may come at another resolution (Kaggle's are 256 px for 299 px images):
            # stretch to the image first so the same crop box cuts both.
            lung_img = Image.fromarray(lung).resize((rgb.shape[1], rgb.shape[0]), Image.Resampling.NEAREST)
            mask = (np.asarray(_resize(np.asarray(lung_img), size, crop, Image.Resampling.NEAREST)) > 127).astype(
                np.uint8
            )
        except (ImageDecodeError, OSError):
            mask = None
    return image, mask, None


def _cache_key(manifest: Manifest, size: int, crop: float) -> str:
    text = f"{_CACHE_VERSION}|{manifest.fingerprint}|{size}|{crop:.4f}"
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def _decode_all(manifest: Manifest, size: int, crop: float, threads: int, progress: bool) -> ImageArrays:
    n = len(manifest.entries)
    images = np.zeros((n, size, size, 3), dtype=np.uint8)
    masks = np.zeros((n, size, size, 1), dtype=np.uint8)
    has_mask = np.zeros(n, dtype=bool)
    valid = np.ones(n, dtype=bool)
    failures = []
    jobs = list(zip(manifest.paths(), manifest.mask_paths(), [size] * n, [crop] * n, strict=True))
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        results = pool.map(_one, jobs)
        bar = tqdm(results, total=n, desc=f"Decoding at {size}px", unit="img", disable=not progress)
        for i, (image, mask, error) in enumerate(bar):
            if image is None:
                valid[i] = False
                failures.append((manifest.entries[i].path, error or "unreadable"))
                continue
            images[i] = image
            if mask is not None:
                masks[i, ..., 0] = mask
                has_mask[i] = True
    return ImageArrays(images, masks, has_mask, valid, failures)


def _save(arrays: ImageArrays, folder: Path) -> None:
    """Readers never see a partial cache; a worker that finishes second keeps the first one's folder."""
    with atomic_write(folder, directory=True) as staging:
        np.save(staging / "images.npy", arrays.images)
        np.save(staging / "masks.npy", arrays.masks)
        np.savez(staging / "flags.npz", has_mask=arrays.has_mask, valid=arrays.valid)
        (staging / "failures.json").write_text(json.dumps(arrays.failures))


def _load(folder: Path) -> ImageArrays:
    flags = np.load(folder / "flags.npz")
    return ImageArrays(
        images=np.load(folder / "images.npy", mmap_mode="r"),
        masks=np.load(folder / "masks.npy", mmap_mode="r"),
        has_mask=flags["has_mask"],
        valid=flags["valid"],
        failures=[tuple(f) for f in json.loads((folder / "failures.json").read_text())],
    )


def load_images(
    manifest: Manifest,
    image_size: int,
    *,
    crop: float = 0.0,
    cache_dir: str | Path | None = None,
    threads: int = 4,
    progress: bool = False,
) -> ImageArrays:
    """Return every entry decoded, border-cropped and resized to ``image_size`` square.

    With ``cache_dir`` the arrays are computed once per (dataset fingerprint, size, crop)
    and later calls, from any process, map them from disk.
    """
    size, crop = check_image_size(image_size), check_crop(crop)
    if cache_dir is None:
        return _decode_all(manifest, size, crop, threads, progress)
    folder = Path(cache_dir) / f"images-{_cache_key(manifest, size, crop)}"
    if not (folder / "flags.npz").is_file():
        _save(_decode_all(manifest, size, crop, threads, progress), folder)
    return _load(folder)

"""What part of an X-ray a model sees: the whole image, the lungs' box, or the lungs alone.

A region is applied to images already decoded and resized (``load_images``), with the lung
mask at the same size, so trials, evaluation, export and predict all cut the same pixels.
``lung_crop`` cuts the lungs' bounding box (plus a margin) and resizes it back to the image
size; ``lung_mask`` keeps the size and sets every pixel outside the (slightly grown) lungs to
black; ``lung_crop_mask`` does both, so the lungs alone fill the input (with ``lung_mask`` half
the input is black, and a 7x7 Grad-CAM cell on its edge spills over the blank). Each image
remembers its box, so a heatmap computed on the model's input can be put back into the
original image's coordinates (:func:`to_original`) and lung focus stays comparable across
regions.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from cxrdata._atomic import atomic_write, one_at_a_time
from cxrdata._classes import did_you_mean
from cxrdata._errors import DatasetError

__all__ = [
    "REGIONS",
    "REGION_MARGIN",
    "RegionInputs",
    "apply_region",
    "cached_region",
    "check_region",
    "hide_lungs",
    "lung_box",
    "to_original",
]

REGIONS = ("full", "lung_crop", "lung_mask", "lung_crop_mask")
# Grown around the lungs on every side, as a fraction of the image side: segmenter masks are
# tight, and the costophrenic angles and the hila, where much of the disease shows, sit on the edge.
REGION_MARGIN = 0.05
MASK_FILL = 0  # the constant outside the lungs with ``lung_mask`` and ``lung_crop_mask``
_MASKED = ("lung_mask", "lung_crop_mask")
_CROPPED = ("lung_crop", "lung_crop_mask")


def check_region(region: str) -> str:
    if region not in REGIONS:
        raise DatasetError(
            f"`input_region` must be one of {', '.join(REGIONS)}, but got {region!r}.{did_you_mean(region, REGIONS)}"
        )
    return region


@dataclass
class RegionInputs:
    """The model's inputs ``(N, S, S, 3)`` uint8 and, per image, the box ``(y0, y1, x0, x1)``
    of the original image they show (the whole image for ``full`` and ``lung_mask``)."""

    images: np.ndarray
    masks: np.ndarray  # (N, S, S, 1) uint8: the lungs as the model sees them
    boxes: np.ndarray  # (N, 4) int


def lung_box(mask: np.ndarray, margin: float = REGION_MARGIN) -> tuple[int, int, int, int]:
    """``(y0, y1, x0, x1)`` (end-exclusive) around the lungs plus ``margin`` of the image side;
    the whole image when the mask is empty, so an image the segmenter missed is still seen."""
    h, w = mask.shape[:2]
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if len(rows) == 0:
        return 0, h, 0, w
    dy, dx = round(margin * h), round(margin * w)
    return max(0, rows[0] - dy), min(h, rows[-1] + 1 + dy), max(0, cols[0] - dx), min(w, cols[-1] + 1 + dx)


def _grown(mask: np.ndarray, margin: float) -> np.ndarray:
    from scipy import ndimage

    steps = max(1, round(margin * mask.shape[0]))
    return np.asarray(ndimage.binary_dilation(mask, iterations=steps), dtype=bool)


def apply_region(
    images: np.ndarray, masks: np.ndarray, available: np.ndarray, region: str, margin: float = REGION_MARGIN
) -> RegionInputs:
    """The inputs for ``region`` from images ``(N, S, S, 3)`` and lung masks ``(N, S, S)``.

    Images whose mask is not ``available`` (or empty) are passed whole: a region never drops
    an image, and evaluation counts every usable one.
    """
    check_region(region)
    n, h, w = images.shape[:3]
    boxes = np.tile(np.array([0, h, 0, w]), (n, 1))
    lungs = (np.asarray(masks).reshape(n, h, w) > 0).astype(np.uint8)
    if region == "full":
        return RegionInputs(np.asarray(images), lungs[..., None], boxes)
    out = np.array(images, dtype=np.uint8, copy=True)
    for i in np.flatnonzero(np.asarray(available, dtype=bool)):
        mask = lungs[i] > 0
        if not mask.any():
            continue
        if region in _MASKED:
            out[i][~_grown(mask, margin)] = MASK_FILL
        if region in _CROPPED:
            y0, y1, x0, x1 = lung_box(mask, margin)
            boxes[i] = (y0, y1, x0, x1)
            out[i] = _resized(out[i, y0:y1, x0:x1], (w, h), Image.Resampling.BILINEAR)
            lungs[i] = _resized(lungs[i, y0:y1, x0:x1] * 255, (w, h), Image.Resampling.NEAREST) > 127
    return RegionInputs(out, lungs[..., None], boxes)


def hide_lungs(
    images: np.ndarray, masks: np.ndarray, available: np.ndarray, margin: float = REGION_MARGIN
) -> np.ndarray:
    """A copy of ``images`` ``(N, S, S, 3)`` with the (grown) lungs set to black: the pixels
    ``lung_mask`` keeps are the ones hidden here, so what is left is what lies outside the lungs.

    Images whose mask is not ``available`` (or empty) are returned unchanged; the caller leaves
    them out of any figure, since nothing was hidden in them.
    """
    n, h, w = images.shape[:3]
    lungs = np.asarray(masks).reshape(n, h, w) > 0
    out = np.array(images, dtype=np.uint8, copy=True)
    for i in np.flatnonzero(np.asarray(available, dtype=bool)):
        if lungs[i].any():
            out[i][_grown(lungs[i], margin)] = MASK_FILL
    return out


def _resized(pixels: np.ndarray, size: tuple[int, int], resample: Image.Resampling) -> np.ndarray:
    return np.asarray(Image.fromarray(np.ascontiguousarray(pixels)).resize(size, resample))


def to_original(heatmaps: np.ndarray, boxes: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Heatmaps ``(N, h, w)`` on the model's input put back into the original image's
    ``size`` ``(H, W)``: resized into each image's box, zero outside it."""
    height, width = size
    out = np.zeros((len(heatmaps), height, width), dtype=np.float32)
    for i, (heat, (y0, y1, x0, x1)) in enumerate(zip(heatmaps, np.asarray(boxes), strict=True)):
        placed = Image.fromarray(np.asarray(heat, dtype=np.float32), mode="F")
        out[i, y0:y1, x0:x1] = np.asarray(placed.resize((int(x1 - x0), int(y1 - y0)), Image.Resampling.BILINEAR))
    return out


def cached_region(
    images: np.ndarray,
    masks: np.ndarray,
    available: np.ndarray,
    region: str,
    folder: Path | None,
    margin: float = REGION_MARGIN,
) -> RegionInputs:
    """:func:`apply_region`, written once to ``folder`` and memory-mapped from then on (by any
    worker): a region's images are as large as the image cache, too large to hold per process."""
    if folder is None:
        return apply_region(images, masks, available, region, margin)
    if not (folder / "boxes.npy").is_file():
        with one_at_a_time(folder):
            if not (folder / "boxes.npy").is_file():  # another worker may have written it while we waited
                _write_region(folder, apply_region(images, masks, available, region, margin))
    return RegionInputs(
        images=np.load(folder / "images.npy", mmap_mode="r"),
        masks=np.load(folder / "masks.npy", mmap_mode="r"),
        boxes=np.load(folder / "boxes.npy"),
    )


def _write_region(folder: Path, cut: RegionInputs) -> None:
    with atomic_write(folder, directory=True) as staging:  # a reader never maps half an array
        np.save(staging / "images.npy", cut.images)
        np.save(staging / "masks.npy", cut.masks)
        np.save(staging / "boxes.npy", cut.boxes)

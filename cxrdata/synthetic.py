"""Small chest-X-ray-like images with lung masks, for tests and demos.

Each image is a bright torso with two dark lung fields, ribs and noise. The class shows
*inside the lungs*: COVID as bilateral peripheral blotches, Viral Pneumonia as diffuse fine
texture, Lung_Opacity as one dense patch, Normal as clear lungs. An optional burnt-in corner
marker that goes with one class lets tests prove that a shortcut is detected.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from cxrdata._classes import CLASSES, COVID, LUNG_OPACITY, NORMAL, VIRAL_PNEUMONIA

__all__ = ["SyntheticSpec", "make_synthetic_dataset", "synthetic_image"]


@dataclass(frozen=True)
class SyntheticSpec:
    """What :func:`make_synthetic_dataset` writes.

    ``marker_class`` gets a bright square burnt into the top-left corner in a share
    ``marker_rate`` of its images (and no other class ever does): a pure shortcut.
    """

    classes: Sequence[str] = (COVID, NORMAL, VIRAL_PNEUMONIA)
    per_class: int = 20
    size: int = 64
    masks: bool = True
    marker_class: str | None = None
    marker_rate: float = 1.0
    marker_size: float = 0.1  # side of the square, as a fraction of the image side
    patients_per_class: int | None = None
    seed: int = 0


def _ellipse(size: int, cx: float, cy: float, rx: float, ry: float) -> np.ndarray:
    y, x = np.mgrid[0:size, 0:size] / size
    inside: np.ndarray = ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 <= 1.0
    return inside


def _blobs(rng: np.random.Generator, size: int, lungs: np.ndarray, count: int, radius: float) -> np.ndarray:
    """Gaussian blotches centred on random lung pixels."""
    out = np.zeros((size, size))
    ys, xs = np.nonzero(lungs)
    y, x = np.mgrid[0:size, 0:size]
    for k in rng.integers(0, len(ys), count):
        r = radius * size * rng.uniform(0.7, 1.3)
        out += np.exp(-(((x - xs[k]) ** 2 + (y - ys[k]) ** 2) / (2 * r * r)))
    return np.clip(out, 0, 1)


def synthetic_image(
    label: str, rng: np.random.Generator, size: int = 64, marker: bool = False, marker_size: float = 0.1
) -> tuple[np.ndarray, np.ndarray]:
    """One ``(size, size)`` uint8 gray image and its bool lung mask."""
    jitter = rng.normal(0, 0.015, 4)
    body = _ellipse(size, 0.5, 0.55, 0.42 + jitter[0], 0.5)
    left = _ellipse(size, 0.32 + jitter[1], 0.48, 0.12, 0.26 + jitter[2])
    right = _ellipse(size, 0.68 + jitter[3], 0.48, 0.12, 0.26 + jitter[2])
    lungs = left | right
    image = 0.08 + 0.62 * body - 0.38 * lungs
    y = np.arange(size)[:, None] / size
    image = image + 0.06 * lungs * (np.sin(y * 40 + rng.uniform(0, 6)) > 0.6)  # ribs
    if label == COVID:
        image += (
            0.45 * _blobs(rng, size, lungs & (np.abs(np.arange(size)[None, :] / size - 0.5) > 0.25), 4, 0.05) * lungs
        )
    elif label == VIRAL_PNEUMONIA:
        image += 0.22 * lungs * (rng.random((size, size)) > 0.55)
    elif label == LUNG_OPACITY:
        image += 0.5 * _blobs(rng, size, lungs, 1, 0.09) * lungs
    # Low-frequency variation (exposure, positioning) makes every image distinct to a
    # perceptual hash, as real radiographs are, so duplicate detection sees no false copies.
    yy, xx = np.mgrid[0:size, 0:size] / size
    for _ in range(4):
        fx, fy, phase = rng.uniform(0.5, 3.0), rng.uniform(0.5, 3.0), rng.uniform(0, 2 * np.pi)
        image += 0.07 * np.cos(2 * np.pi * (fx * xx + fy * yy) + phase)
    image += rng.normal(0, 0.03, (size, size))
    if marker:
        m = max(3, round(size * marker_size))
        image[1 : 1 + m, 1 : 1 + m] = 1.0
    return (np.clip(image, 0, 1) * 255).astype(np.uint8), lungs


def make_synthetic_dataset(root: str | Path, spec: SyntheticSpec | None = None) -> Path:
    """Write a dataset in the Kaggle layout (``CLASS/images``, ``CLASS/masks``, metadata.csv)."""
    spec = spec or SyntheticSpec()
    unknown = [c for c in spec.classes if c not in CLASSES]
    if unknown:
        raise ValueError(f"`classes` must be among {CLASSES}, but got {unknown}.")
    root = Path(root)
    rng = np.random.default_rng(spec.seed)
    rows = []
    for label in spec.classes:
        folder = root / label
        (folder / "images").mkdir(parents=True, exist_ok=True)
        if spec.masks:
            (folder / "masks").mkdir(parents=True, exist_ok=True)
        for i in range(spec.per_class):
            marker = label == spec.marker_class and rng.random() < spec.marker_rate
            image, lungs = synthetic_image(label, rng, spec.size, marker, spec.marker_size)
            name = f"{label}-{i + 1}.png"
            Image.fromarray(image).save(folder / "images" / name)
            if spec.masks:
                Image.fromarray(lungs.astype(np.uint8) * 255).save(folder / "masks" / name)
            patient = f"{label[:2]}{i % spec.patients_per_class}" if spec.patients_per_class else ""
            rows.append(
                {"path": f"{label}/images/{name}", "label": label, "patient_id": patient, "source": "synthetic"}
            )
    with (root / "metadata.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["path", "label", "patient_id", "source"])
        writer.writeheader()
        writer.writerows(rows)
    return root

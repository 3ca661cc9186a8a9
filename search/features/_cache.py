"""Boundary activations on disk, computed once per key and shared by every worker.

The key is everything the activations depend on: the dataset (its fingerprint), image size
and crop, backbone, weights (the file's digest, or the seed of a random initialisation),
which layers are frozen, and the Keras version. A folder per key is written under a
temporary name and renamed into place, so a reader never sees half of it; a lock file
keeps two workers on one machine from computing the same key at once (a worker on another
machine may compute it too, and the rename still leaves one whole copy).
"""

from __future__ import annotations

import hashlib
import json
from functools import cache
from pathlib import Path

import keras
import numpy as np

from cxrdata import atomic_write, one_at_a_time
from search._settings import Settings, settings
from search.features._boundary import Boundary

__all__ = ["DEFAULT_LIMIT_GB", "FeatureCache", "compute_features", "feature_key", "limit_bytes"]

DEFAULT_LIMIT_GB = Settings.feature_cache_gb  # largest cache file set for one key; beyond it a trial trains on images


def limit_bytes() -> int:
    """The per-key size limit, from ``CXR_FEATURE_CACHE_GB`` (0 turns the cache off)."""
    return int(settings().feature_cache_gb * 2**30)


@cache
def _file_digest(path: str) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:16]


def feature_key(
    *,
    dataset: str,
    image_size: int,
    crop: float,
    backbone: str,
    weights: str | None,
    seed: int,
    frozen: int,
    boundary: Boundary,
) -> str:
    """A short digest of everything the boundary activations depend on."""
    if weights is None:
        source = f"random:{seed}"  # a random backbone is a function of the seed
    elif Path(weights).is_file():
        source = f"file:{_file_digest(weights)}"
    else:
        source = str(weights)
    parts = {
        "dataset": dataset,
        "image_size": image_size,
        "crop": round(crop, 6),
        "backbone": backbone,
        "weights": source,
        "frozen": frozen,
        "boundary": list(boundary.names),
        "keras": keras.__version__,
        "dtype": keras.config.dtype_policy().name,  # mixed precision gives other activations
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:20]


class FeatureCache:
    """``features-<key>/`` folders of ``.npy`` files, one per boundary tensor, under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        # One memory map per key and process: a map per trial would pile up mappings.
        self._loaded: dict[str, list[np.ndarray]] = {}

    def folder(self, key: str) -> Path:
        return self.root / f"features-{key}"

    def load_or_compute(self, key: str, boundary: Boundary, images: np.ndarray, batch_size: int) -> list[np.ndarray]:
        """The boundary activations of every image (row i belongs to ``images[i]``), memory-mapped."""
        if key in self._loaded:
            return self._loaded[key]
        folder = self.folder(key)
        if not folder.is_dir():
            with one_at_a_time(folder):
                if not folder.is_dir():  # another worker may have finished while we waited
                    self._write(folder, compute_features(boundary, images, batch_size))
        arrays = [np.load(folder / f"{i}.npy", mmap_mode="r") for i in range(len(boundary.names))]
        self._loaded[key] = arrays
        return arrays

    @staticmethod
    def _write(folder: Path, arrays: list[np.ndarray]) -> None:
        # Loses only to an identical folder from another machine, which is then kept.
        with atomic_write(folder, directory=True) as staging:
            for i, array in enumerate(arrays):
                np.save(staging / f"{i}.npy", array)


def compute_features(boundary: Boundary, images: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Run the constant part once over ``images`` (uint8 or float, at the model's size)."""
    produced = boundary.front.predict(np.asarray(images, dtype=np.float32), batch_size=batch_size, verbose=0)
    return [np.asarray(a, dtype=np.float32) for a in (produced if isinstance(produced, list) else [produced])]

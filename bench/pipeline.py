"""Input pipeline throughput: decode + resize + augment, with and without the decode-once cache.

    python -m bench.pipeline [--data PATH] [--sizes 128,224] [--epochs 2]

Prints one row per (image size, mode) with images per second over whole epochs.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

from bench._paths import SHARED, shown
from cxrdata import ImageArrays, Manifest, get_scheme, load_images, make_dataset, make_split, scan

DEFAULT_DATA = SHARED / "cxr" / "radiography" / "COVID-19_Radiography_Dataset"


def _epoch(arrays: ImageArrays, labels: np.ndarray, strength: float) -> int:
    seen = 0
    indices = np.arange(len(labels))
    for x, _ in make_dataset(arrays, indices, labels, batch_size=32, shuffle=True, augment_strength=strength):
        seen += int(x.shape[0])
    return seen


def _keras_layers_epoch(arrays: ImageArrays, labels: np.ndarray) -> int:
    """The same augmentation as five stacked Keras ``Random*`` layers, for comparison."""
    import keras
    import tensorflow as tf

    chain = keras.Sequential(
        [
            keras.layers.RandomRotation(10 / 360, fill_mode="nearest"),
            keras.layers.RandomTranslation(0.1, 0.1, fill_mode="nearest"),
            keras.layers.RandomShear(0.1, 0.1, fill_mode="nearest"),
            keras.layers.RandomZoom(0.1, 0.1, fill_mode="nearest"),
            keras.layers.RandomFlip("horizontal"),
        ]
    )
    seen = 0
    indices = np.arange(len(labels))
    data = make_dataset(arrays, indices, labels, batch_size=32, shuffle=True)
    data = data.map(lambda x, y: (chain(x, training=True), y), num_parallel_calls=tf.data.AUTOTUNE)
    for x, _ in data:
        seen += int(x.shape[0])
    return seen


def _timed(step: Callable[[], int]) -> tuple[float, int]:
    start = time.perf_counter()
    count = step()
    return time.perf_counter() - start, count


def _rows(manifest: Manifest, labels: np.ndarray, size: int, epochs: int) -> list[tuple[str, float]]:
    """(mode, images per second) for one image size."""
    n = len(manifest.entries)

    def epochs_of(arrays: Callable[[], ImageArrays], strength: float) -> int:
        return sum(_epoch(arrays(), labels, strength) for _ in range(epochs))

    def uncached() -> ImageArrays:  # every epoch decodes and resizes every file again
        return load_images(manifest, size)

    with tempfile.TemporaryDirectory() as cache:
        start = time.perf_counter()
        warm = load_images(manifest, size, cache_dir=cache)
        fill = n / (time.perf_counter() - start)

        def cached() -> ImageArrays:
            return warm

        timed = [
            ("no cache: decode+resize+augment(s=1)", lambda: epochs_of(uncached, 1.0)),
            ("no cache: decode+resize, no augment", lambda: epochs_of(uncached, 0.0)),
            ("cache: augment(s=1) from disk cache", lambda: epochs_of(cached, 1.0)),
            (
                "cache: 5 Keras Random* layers instead",
                lambda: sum(_keras_layers_epoch(warm, labels) for _ in range(epochs)),
            ),
            ("cache: no augment, from disk cache", lambda: epochs_of(cached, 0.0)),
        ]
        rows = [("cache, first fill (decode+resize+write)", fill)]
        for mode, step in timed:
            seconds, count = _timed(step)
            rows.append((mode, count / seconds))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--sizes", default="128,224")
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()

    manifest = scan(args.data)
    labels = make_split(manifest, get_scheme("three")).labels
    data = shown(args.data)
    print(f"{len(manifest.entries)} images from {data}, {os.cpu_count()} CPU cores, {args.epochs} epochs per row\n")
    print(f"{'size':>5}  {'mode':<40}  {'images/s':>9}")
    _epoch(load_images(manifest, 32), labels, 1.0)  # warm up TensorFlow once
    for size in (int(s) for s in args.sizes.split(",")):
        for mode, rate in _rows(manifest, labels, size, args.epochs):
            print(f"{size:>5}  {mode:<40}  {rate:>9.0f}")


if __name__ == "__main__":
    main()

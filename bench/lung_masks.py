"""What lung masks out of the box cost a study: the packaged segmenter on a dataset without
masks, and Grad-CAM lung focus per trial.

    python -m bench.lung_masks [--data ../shared/cxr/radiography/COVID-19_Radiography_Dataset] [--repeats 2]
        [--backbones MobileNetV2,DenseNet121]

Runs the worker's own code (``search.TrialData``): every image decoded at 224 px, then
segmented once (load, predict, resize back, clean up, written to the on-disk cache), then read
back from that cache as every later trial and worker does. Grad-CAM is measured as a trial
pays it: a freshly built backbone (random weights) over the trial's ``FOCUS_IMAGES``
validation images, once per model (``--repeats`` models per backbone).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from bench._paths import SHARED, shown
from cxrdata import scan
from cxrdata.lungs import packaged_segmenter, segmenter_card

DEFAULT_DATA = SHARED / "cxr" / "radiography" / "COVID-19_Radiography_Dataset"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=2, help="Grad-CAM runs per backbone, each on a new model")
    parser.add_argument("--backbones", default="MobileNetV2", help="comma-separated (default: MobileNetV2)")
    args = parser.parse_args()
    import keras

    from search._trial import FOCUS_IMAGES, TrialData, focus_entries, measure_focus
    from search.model import build_model
    from search.space import TrialConfig

    size, timings = args.image_size, []
    manifest = scan(args.data)
    with tempfile.TemporaryDirectory(prefix="bench-lung-masks-") as cache:
        data = TrialData(manifest, cache_dir=Path(cache), lung_model=packaged_segmenter())
        started = time.perf_counter()
        data.arrays(size, 0.0)
        timings.append((f"decode {len(manifest.entries)} images at {size} px (every study)", _since(started)))
        started = time.perf_counter()
        masks, available, from_dataset = data.lung_masks(size, 0.0)
        segmented = int(available.sum() - from_dataset.sum())
        timings.append((f"segment {segmented} images and cache them (once per study)", _since(started)))
        again = TrialData(manifest, cache_dir=Path(cache), lung_model=packaged_segmenter())
        again.arrays(size, 0.0)
        started = time.perf_counter()
        again.lung_masks(size, 0.0)
        timings.append(("read the masks from the cache (each later worker)", _since(started)))
        for backbone in args.backbones.split(","):
            config = TrialConfig(backbone, 1.0, 64, 0.1, 1e-3, 0.0, "three", weights="none", image_size=size)
            split = data.split(config.scheme)
            chosen = len(focus_entries(data, config, split))
            for repeat in range(args.repeats):
                built = build_model(config, 3)
                started = time.perf_counter()
                measure_focus(built, data, config, split)
                what = f"Grad-CAM lung focus, {backbone}, {chosen} images (trial {repeat + 1})"
                timings.append((what, _since(started)))
                keras.backend.clear_session()
        share = float(np.mean([m.mean() for m in masks[available]]))
    dice = ((segmenter_card(packaged_segmenter()) or {}).get("held_out") or {}).get("dice_mean")
    print(f"{shown(args.data)}, packaged segmenter (held-out Dice {dice}), FOCUS_IMAGES={FOCUS_IMAGES}")
    for what, seconds in timings:
        print(f"  {what:<66} {seconds:6.1f} s")
    print(f"  mean lung share of the segmented images: {share:.3f}")


def _since(started: float) -> float:
    return time.perf_counter() - started


if __name__ == "__main__":
    main()

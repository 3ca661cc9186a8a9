"""Lung focus of a study's best trials on X-rays with human-drawn lung masks.

    python -m bench.lung_focus --storage sqlite:///optuna.db --study NAME [--masks ../shared/cxr/lung-masks] [--top 5]

Loads each top trial's saved model and measures where its COVID score looks on every image of
the mask folder (images/ + masks/, human annotations), next to the focus the search stored
(measured on its own validation split, with dataset or segmenter masks).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from bench._paths import SHARED, shown
from cxrdata.lungs import load_pairs
from search import load_models, study_info
from search.gradcam import gradcam, gradcam_layer_of, lung_focus
from search.space import TrialConfig
from search.store import ResultStore, add_storage_argument

DEFAULT_MASKS = SHARED / "cxr" / "lung-masks"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    add_storage_argument(parser)
    parser.add_argument("--study", required=True)
    parser.add_argument("--masks", type=Path, default=DEFAULT_MASKS)
    parser.add_argument("--top", type=int, default=5)
    args = parser.parse_args()
    import keras

    from search.backbones import get_backbone

    info = study_info(args.storage, args.study)
    rows = [
        r for r in ResultStore(args.storage).ranked(args.study, limit=50) if any(a.kind == "model" for a in r.artifacts)
    ]
    header = ("trial", "backbone", "val COVID sens", "stored focus", "human-mask focus", "ratio", "pointing", "blank")
    print("{:>5}  {:<17} {:>14} {:>12} {:>16} {:>6} {:>8} {:>5}".format(*header))
    for row in rows[: args.top]:
        config = TrialConfig.from_json(row.config_json)
        model = load_models(row, info)[0]
        pairs = load_pairs(args.masks, config.image_size)
        images = np.repeat(pairs.images, 3, axis=-1).astype(np.float32)
        layer = gradcam_layer_of(model, get_backbone(config.backbone).gradcam_layer)
        focus = lung_focus(gradcam(model, layer, images, 0), pairs.masks[..., 0])

        def f(v: float | None) -> str:
            return "-" if v is None else f"{v:.3f}"

        print(
            f"{row.trial_number:>5}  {row.backbone:<17} {f(row.covid_sensitivity):>14} {f(row.lung_focus):>12} "
            f"{f(focus.energy):>16} {f(focus.ratio):>6} {f(focus.pointing):>8} {focus.blank:>5}"
        )
        keras.backend.clear_session()
    masks = shown(args.masks)
    print(f"\nHuman masks: {len(pairs.names)} images of {masks} (empty masks skipped: {len(pairs.skipped)}).")


if __name__ == "__main__":
    main()

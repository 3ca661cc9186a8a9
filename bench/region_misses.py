"""Which validation COVID X-rays the lung-region winners miss, and where whole-image winners look on them.

    python -m bench.region_misses [--out .bench/lung-region] [--data PATH]

Reads the studies ``python -m bench.lung_region`` left in ``--out`` (run it first, with and
without ``--focus-weight 2``). For each study's top-ranked trial: the validation COVID X-rays
it misses at its own threshold, and the segmenter's lung area on them against every
validation COVID X-ray (a miss caused by a failed mask would show as a small or empty area).
Then, for each whole-image (``full``) winner, on the X-rays some lung-region winner misses
("hard") and on the other validation COVID X-rays: how many it calls COVID, and the share of
its COVID Grad-CAM evidence inside the segmented lungs. A whole-image model that catches the
hard X-rays with its evidence outside the lungs is catching them by what lies outside them.
Last, the same X-rays with their (grown) lungs set to black (``search._hidden``, what a trial's
``hidden_lungs_auc`` reads): how many each whole-image winner still calls COVID, at its own
threshold and at one chosen on the lungs-hidden X-rays for the same specificity (a black lung
field moves every score). What it still catches with no lung pixel visible, it can catch
without the lungs.

``--out`` may be given more than once (studies from several runs of ``bench.lung_region``).

Validation split only, as the search saw it; nothing here is fed back into a study.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench._paths import shown
from bench.lung_region import DATA

LUNG_REGIONS = ("lung_crop", "lung_mask", "lung_crop_mask")


@dataclass
class Winner:
    study: str  # the study folder's name, e.g. "lung_crop-focus-2"
    storage: str
    name: str
    row: Any  # TrialRow
    covid: np.ndarray  # manifest entries of the validation COVID X-rays
    proba: np.ndarray  # the trial's COVID probability on each of them
    others: np.ndarray  # manifest entries of the other validation X-rays

    @property
    def missed(self) -> np.ndarray:
        return np.asarray(self.covid[self.proba < self.row.covid_threshold])


def winners(outs: list[Path]) -> list[Winner]:
    import optuna

    from search import study_info
    from search.metrics import COVID_LABEL
    from search.store import ResultStore

    found = []
    for db in sorted(db for out in outs for db in out.glob("*/optuna.db")):
        storage = f"sqlite:///{db}"
        (name,) = optuna.get_all_study_names(storage)
        store = ResultStore(storage)
        try:
            ranked = store.ranked(name, limit=1, ranking=study_info(storage, name).ranking)
            if not ranked:
                continue
            predictions = store.predictions(name, ranked)[ranked[0].trial_number]
        finally:
            store.dispose()
        covid = predictions.labels == COVID_LABEL
        found.append(
            Winner(
                db.parent.name,
                storage,
                name,
                ranked[0],
                predictions.indices[covid],
                predictions.proba[covid, COVID_LABEL],
                predictions.indices[~covid],
            )
        )
    return found


def load_winner(winner: Winner) -> tuple[Any, Any]:
    """The winner's trained model and its trial configuration."""
    from search import load_models, study_info
    from search.space import TrialConfig

    (model,) = load_models(winner.row, study_info(winner.storage, winner.name))
    return model, TrialConfig.from_json(winner.row.config_json)


def covid_heatmaps(model: Any, config: Any, entries: np.ndarray, data: Any) -> np.ndarray:
    """A whole-image winner's COVID Grad-CAM on ``entries`` (its input is the original image,
    so the maps are in its coordinates)."""
    from search.backbones import get_backbone
    from search.gradcam import gradcam, gradcam_layer_of

    images = np.asarray(data.inputs(config).images[entries], dtype=np.float32)
    return gradcam(model, gradcam_layer_of(model, get_backbone(config.backbone).gradcam_layer), images, 0)


def hidden_proba(model: Any, config: Any, data: Any, entries: np.ndarray) -> np.ndarray:
    """The model's COVID probability on each of ``entries`` with its lungs hidden; NaN where the
    X-ray has no lung mask (nothing could be hidden)."""
    from search._hidden import hidden_lungs_entries, hidden_lungs_proba

    usable = hidden_lungs_entries(data, config, entries, limit=len(entries))  # sorted
    found = dict(zip(usable.tolist(), hidden_lungs_proba(model, data, config, usable), strict=True))
    return np.array([found.get(int(e), np.nan) for e in entries])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.region_misses", description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--out", type=Path, action="append", help="default: .bench/lung-region")
    parser.add_argument("--data", type=Path, default=DATA)
    args = parser.parse_args(argv)
    args.out = args.out or [Path(".bench/lung-region")]
    from cxrdata import scan
    from cxrdata.lungs import packaged_segmenter
    from search import TrialData
    from search.gradcam import lung_focus
    from search.metrics import OperatingTarget, choose_threshold

    found = winners(args.out)
    if not found:
        shown_out = ", ".join(map(str, args.out))
        raise SystemExit(f"`--out` must hold the studies of python -m bench.lung_region, but {shown_out} has none.")
    manifest = scan(args.data)
    cache = Path(found[0].storage.removeprefix("sqlite:///")).parent / ".cache"
    data = TrialData(manifest, cache_dir=cache, lung_model=packaged_segmenter())
    lungs, _, _ = data.lung_masks(224, 0.0)
    area = lungs.reshape(len(lungs), -1).mean(axis=1)
    everyone = found[0].covid
    print(f"data {shown(args.data)}: {len(everyone)} validation COVID X-rays, segmenter lung area "
          f"{100 * area[everyone].mean():.1f}% of the image (min {100 * area[everyone].min():.1f}%)\n")  # fmt: skip
    print("| study | top trial | missed | their lung area % (mean, min) | missed X-rays |")
    print("|---|---|---|---|---|")
    for w in found:
        missed = w.missed
        names = ", ".join(Path(manifest.entries[i].path).stem for i in sorted(missed)) or "-"
        areas = f"{100 * area[missed].mean():.1f}, {100 * area[missed].min():.1f}" if len(missed) else "-"
        print(f"| {w.study} | {w.row.trial_number} {w.row.backbone} | {len(missed)} | {areas} | {names} |")
    by_region = [w.missed for w in found if w.row.input_region in LUNG_REGIONS]
    if not by_region:
        raise SystemExit("`--out` must hold a study whose top trial sees a lung region, but none does.")
    hard, times = np.unique(np.concatenate(by_region), return_counts=True)
    ranked = sorted(zip(hard, times, strict=True), key=lambda pair: -pair[1])
    often = ", ".join(f"{Path(manifest.entries[i].path).stem} {n}" for i, n in ranked)
    print(f"\n{len(hard)} X-rays missed by some of the {len(by_region)} lung-region winners ('hard'), "
          f"by how many: {often}")  # fmt: skip
    print("\nThe whole-image winners on them:\n")
    print("| study | top trial | hard called COVID | evidence in lungs on hard % | on the other COVID % |")
    print("|---|---|---|---|---|")
    whole = [(w, *load_winner(w)) for w in found if w.row.input_region in (None, "full")]
    for w, model, config in whole:
        heat, seen = covid_heatmaps(model, config, w.covid, data), lungs[w.covid]
        is_hard = np.isin(w.covid, hard)
        on_hard, on_rest = (lung_focus(heat[m], seen[m]).energy or 0.0 for m in (is_hard, ~is_hard))
        caught = int((w.proba[is_hard] >= w.row.covid_threshold).sum())
        print(f"| {w.study} | {w.row.trial_number} {w.row.backbone} | {caught} of {len(hard)} "
              f"| {100 * on_hard:.1f} | {100 * on_rest:.1f} |")  # fmt: skip
    # A black lung field shifts every X-ray's score, so what the lungs-hidden scores still separate
    # is read at a threshold chosen on them (the same rule, specificity 0.95, on the hidden
    # non-COVID X-rays), beside the winner's own threshold.
    print("\nWith the lungs hidden (validation X-rays with a lung mask):\n")
    print("| study | top trial | called COVID at its own threshold: hard / other COVID / non-COVID "
          "| at a threshold for specificity 0.95 on the hidden X-rays: hard / other COVID |")  # fmt: skip
    print("|---|---|---|---|")
    for w, model, config in whole:
        is_hard = np.isin(w.covid, hard)
        covid, others = hidden_proba(model, config, data, w.covid), hidden_proba(model, config, data, w.others)
        rest = others[~np.isnan(others)]
        own = w.row.covid_threshold
        fair = choose_threshold(np.zeros(len(rest), bool), rest, OperatingTarget("specificity", 0.95))
        assert fair is not None
        cells = []
        for threshold in (own, fair):
            hard_n, other_n = (int((covid[m] >= threshold).sum()) for m in (is_hard, ~is_hard))
            cells.append(f"{hard_n} of {int(is_hard.sum())} / {other_n} of {int((~is_hard).sum())}")
        alarms = int((rest >= own).sum())
        print(f"| {w.study} | {w.row.trial_number} {w.row.backbone} | {cells[0]} / {alarms} of {len(rest)} "
              f"| {cells[1]} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())

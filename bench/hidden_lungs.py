"""What the top trials can tell with the lungs hidden, beside where their Grad-CAM evidence sits.

    python -m bench.hidden_lungs STUDY_DB... [--top 1] [--exports ensemble,single] [--skip-box] [--data PATH]

For each study database given (``optuna.db`` of ``bench.lung_region`` or ``bench.quality``,
upgraded to the current results schema), its top-ranked trials on the validation split: COVID
AUC as stored, COVID AUC with the (grown) lungs set to black (``search._hidden``, what a trial
now stores), COVID AUC with the lungs' whole box set to black (the lungs' outline hidden too),
and the stored Grad-CAM lung focus. A model that reads only the lungs scores 0.5 on both hidden
inputs; one that also reads what lies outside them scores higher, wherever its Grad-CAM sits.
``--exports``: folders beside a database holding an exported model (``bench.quality`` writes
``ensemble`` and ``single``), measured the same way on the study's validation split.

Validation split only, as the search saw it; nothing here is fed back into a study.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench._paths import shown
from bench.lung_region import DATA


def _box_hidden_auc(model: Any, data: Any, config: Any, entries: np.ndarray, labels: np.ndarray) -> float | None:
    """COVID AUC with the lungs' box (margin included) black: no lung pixel and no outline left."""
    from cxrdata import apply_region, lung_box
    from search._hidden import hidden_lungs_auc
    from search.metrics import COVID_LABEL

    masks, available, _ = data.lung_masks(config.image_size, config.crop)
    images = np.array(data.arrays(config.image_size, config.crop).images[entries], copy=True)
    for k, i in enumerate(entries):
        y0, y1, x0, x1 = lung_box(masks[i])
        images[k, y0:y1, x0:x1] = 0
    seen = apply_region(images, masks[entries], available[entries], config.input_region).images
    proba = np.asarray(model.predict(seen.astype(np.float32), batch_size=config.batch_size, verbose=0))
    return hidden_lungs_auc(labels, proba[:, COVID_LABEL])


def measure(db: Path, top: int, manifest: Any, exports: list[str], box: bool = True) -> list[str]:
    import optuna

    from cxrdata.lungs import packaged_segmenter
    from search import TrialData, load_models, study_info
    from search._hidden import hidden_lungs_auc, hidden_lungs_entries, hidden_lungs_proba
    from search.space import TrialConfig
    from search.store import ResultStore

    storage = f"sqlite:///{db}"
    (name,) = optuna.get_all_study_names(storage)
    store = ResultStore(storage)
    try:
        ranked = store.ranked(name, limit=top, ranking=study_info(storage, name).ranking)
    finally:
        store.dispose()
    data = TrialData(manifest, cache_dir=db.parent / ".cache", lung_model=packaged_segmenter())
    lines = []
    for row in ranked:
        config = TrialConfig.from_json(row.config_json)
        split = data.split(config.scheme)
        entries = hidden_lungs_entries(data, config, split.indices["val"])
        labels = split.labels[entries]
        (model,) = load_models(row, study_info(storage, name))
        hidden_lungs_proba(model, data, config, entries[:8])  # warm-up: the first call builds the graph
        started = time.perf_counter()
        hidden = hidden_lungs_auc(labels, hidden_lungs_proba(model, data, config, entries))
        seconds = time.perf_counter() - started
        boxed = _box_hidden_auc(model, data, config, entries, labels) if box else None
        focus = "-" if row.lung_focus is None else f"{100 * row.lung_focus:.1f} / {row.lung_focus_ratio:.2f}"
        lines.append(
            f"| {shown(db.parent)} | {row.trial_number} {row.backbone} | {config.input_region} | "
            f"{config.focus_weight:g} | {row.covid_auc:.3f} | {focus} | {hidden:.3f} | {_f(boxed)} | "
            f"{len(entries)} | {seconds:.1f} |"
        )
        print(lines[-1], flush=True)
    for folder in (db.parent / name for name in exports):
        if (folder / "model.keras").is_file():
            lines.append(_exported(folder, data, ranked[0]))
            print(lines[-1], flush=True)
    return lines


def _f(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _exported(folder: Path, data: Any, top: Any) -> str:
    """The exported model in ``folder`` (its card names its members), on its study's validation split."""
    import json
    from dataclasses import replace

    import keras

    from search._hidden import hidden_lungs_auc, hidden_lungs_entries, hidden_lungs_proba
    from search.space import TrialConfig

    card = json.loads((folder / "model_card.json").read_text())
    config = replace(TrialConfig.from_json(top.config_json), image_size=int(card["input"]["size"]))
    split = data.split(config.scheme)
    entries = hidden_lungs_entries(data, config, split.indices["val"])
    labels = split.labels[entries]
    model = keras.models.load_model(folder / "model.keras", safe_mode=True)
    hidden = hidden_lungs_auc(labels, hidden_lungs_proba(model, data, config, entries))
    boxed = _box_hidden_auc(model, data, config, entries, labels)
    trials = "+".join(str(m["trial"]) for m in card["members"])
    focus = "-" if card.get("lung_focus") is None else f"{100 * card['lung_focus']:.1f} / -"
    return (
        f"| {shown(folder)} | export ({trials}) | {config.input_region} | {config.focus_weight:g} | - | {focus} | "
        f"{hidden:.3f} | {boxed:.3f} | {len(entries)} | - |"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.hidden_lungs", description=(__doc__ or "").splitlines()[0])
    parser.add_argument("databases", type=Path, nargs="+", help="optuna.db files of finished studies")
    parser.add_argument("--top", type=int, default=1, help="top-ranked trials per study")
    parser.add_argument("--exports", default="", help="comma-separated folders beside each database to measure too")
    parser.add_argument("--skip-box", action="store_true", help="leave out the lungs' box column (half the time)")
    parser.add_argument("--data", type=Path, default=DATA)
    args = parser.parse_args(argv)
    from cxrdata import scan

    missing = [str(db) for db in args.databases if not db.is_file()]
    if missing:
        raise SystemExit(f"Every study database must exist, but {', '.join(missing)} does not.")
    manifest = scan(args.data)
    print(f"data {shown(args.data)}; validation split; lung masks from the packaged segmenter\n")
    print(
        "| study | trial | region | focus weight | COVID AUC | lung focus share % / ratio | "
        "COVID AUC, lungs hidden | COVID AUC, lungs' box hidden | images | s (lungs hidden) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for db in args.databases:
        measure(db, args.top, manifest, [name for name in args.exports.split(",") if name], box=not args.skip_box)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Input regions: the best trials that see the whole X-ray, the lungs' box, or the lungs alone.

    python -m bench.lung_region [--trials 10] [--regions full,lung_crop,...] [--out DIR]
                                [--lung-model auto|PATH] [--min-lung-focus-ratio R]
                                [--max-hidden-lungs-auc A] [--focus-weight W]

One study per region (``full``, ``lung_crop``, ``lung_mask``, ``lung_crop_mask``; regions joined by
``+``, e.g. ``full+lung_crop+lung_mask``, are searched together in one study; with
``--min-lung-focus-ratio`` or ``--max-hidden-lungs-auc``, under that constraint; with
``--focus-weight``, trained with that penalty on Grad-CAM evidence outside the lungs) on the
shared sample, each with
the same space (below: the default space's two ImageNet backbones of these machines' weights,
head-only or the top eighth fine-tuned, at 224 px), the same seed and split. For each study's
top-ranked trial it reports:

- validation and test COVID sensitivity/specificity at the trial's own threshold (chosen on
  validation for specificity 0.95); the test split is read once, by ``search.evaluate``;
- lung focus on the human-masked X-rays of ``../shared/cxr/lung-masks`` (frontal views with a
  non-empty mask: 427 of 451), measured against the human masks in the original image's
  coordinates: the share of Grad-CAM energy inside the lungs and its ratio to the lungs'
  share of the image (1.0 is no better than a flat map). The sample has no masks, so its own
  focus comes from the segmenter; these masks were drawn by people;
- COVID sensitivity on those X-rays as an external set (another source than the sample, all
  COVID: sensitivity is the only figure defined), via ``search.evaluate --external``;
- its stored COVID AUC with the lungs hidden, and how many trials of each region the study
  ran and completed (with a constraint, how many completed trials meet it).

Each step is skipped when its result is already in ``--out``, so a stopped run resumes.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench._paths import SHARED, shown

DATA = SHARED / "cxr" / "radiography" / "COVID-19_Radiography_Dataset"
MASKS = SHARED / "cxr" / "lung-masks"
REGIONS = ("full", "lung_crop", "lung_mask", "lung_crop_mask")
EXTERNAL = "lung-masks"
SPACE = """
[space]
backbones = ["DenseNet121", "MobileNetV2"]
schemes = ["three"]
regions = {regions}
freeze_depth = {{ low = 0.875, high = 1.0, step = 0.125 }}
head_width = {{ low = 32, high = 512, log = true }}
dropout = {{ low = 0.0, high = 0.5 }}
learning_rate = {{ low = 1e-4, high = 1e-2, log = true }}
augment_strength = 0.0

[training]
image_size = 224
max_epochs = 12
patience = 3
"""


def _run(args: list[str], log: Path) -> float:
    started = time.perf_counter()
    with log.open("a") as out:
        out.write(f"\n$ python {' '.join(args)}\n")
        out.flush()
        done = subprocess.run([sys.executable, *args], stdout=out, stderr=subprocess.STDOUT, check=False)
    if done.returncode != 0:
        raise SystemExit(f"python {' '.join(args[:2])} failed with exit code {done.returncode}; see {log}")
    return time.perf_counter() - started


def external_set(out: Path) -> Path:
    """The human-masked frontal X-rays in a layout cxrdata reads (``COVID/images``, ``COVID/masks``)."""
    root = out / EXTERNAL
    if (root / "COVID" / "images").is_dir():
        return root
    staging = out / f".{EXTERNAL}"
    shutil.rmtree(staging, ignore_errors=True)
    for sub in ("images", "masks"):
        (staging / "COVID" / sub).mkdir(parents=True)
    with (MASKS / "metadata.csv").open(newline="") as handle:
        for row in csv.DictReader(handle):
            if row["view"] == "L":  # lateral views carry no lung annotation
                continue
            name = Path(row["image"]).name
            shutil.copyfile(MASKS / row["image"], staging / "COVID" / "images" / name)
            shutil.copyfile(MASKS / row["mask"], staging / "COVID" / "masks" / name)
    staging.rename(root)
    return root


def reference_points(external: Path, size: int = 224, cells: int = 7) -> dict[str, float]:
    """What the focus share means, on the human masks: the share that heatmaps with no
    preference inside what a region shows would get, and that of evidence spread evenly over the lungs.

    - a flat map over the whole image (the lungs' share of the image: ratio 1.0);
    - a flat map over the lungs' box (all that ``lung_crop`` shows);
    - a flat map over the grown lungs (all that ``lung_mask`` shows);
    - the lungs themselves seen at ``cells`` x ``cells`` (averaged into the cells, resized back
      bilinearly, as Grad-CAM's map is): a model whose evidence is the lungs, evenly. Not a ceiling:
      evidence in the cells wholly inside the lungs scores more.
    """
    import numpy as np
    from PIL import Image

    from cxrdata import apply_region, lung_box

    shares: dict[str, list[float]] = {"whole image": [], "lungs' box": [], "grown lungs": [], "7x7 lungs": []}
    for path in sorted((external / "COVID" / "masks").iterdir()):
        lungs = np.asarray(Image.open(path).convert("L").resize((size, size), Image.Resampling.NEAREST)) > 127
        if not lungs.any():
            continue
        y0, y1, x0, x1 = lung_box(lungs)
        white = np.full((1, size, size, 3), 255, np.uint8)
        shown = apply_region(white, lungs[None], np.ones(1, bool), "lung_mask").images[0, ..., 0] > 0
        coarse = Image.fromarray(lungs.astype(np.float32), mode="F").resize((cells, cells), Image.Resampling.BOX)
        seen = np.asarray(coarse.resize((size, size), Image.Resampling.BILINEAR))
        shares["whole image"].append(float(lungs.mean()))
        shares["lungs' box"].append(float(lungs[y0:y1, x0:x1].mean()))
        shares["grown lungs"].append(float(lungs[shown].mean()))
        shares["7x7 lungs"].append(float((seen * lungs).sum() / seen.sum()))
    return {name: float(np.mean(values)) for name, values in shares.items()}


def _rows(storage: str, study: str) -> dict[str, Any]:
    from search import study_info
    from search.store import ResultStore

    store = ResultStore(storage)
    try:
        top = store.ranked(study, limit=1, ranking=study_info(storage, study).ranking)[0]  # its constraints too
        rows = {"val": top}
        for split in ("test", f"external:{EXTERNAL}"):
            found = [r for r in store.trials(study, split=split) if r.trial_number == top.trial_number]
            if found:
                rows[split] = found[-1]
        return rows
    finally:
        store.dispose()


def _figures(rows: dict[str, Any], seconds: float) -> dict[str, Any]:
    val, test, ext = rows["val"], rows.get("test"), rows.get(f"external:{EXTERNAL}")
    config = json.loads(val.config_json)
    return {
        "trial": val.trial_number,
        "backbone": val.backbone,
        "region": val.input_region,
        "hidden_lungs_auc": val.hidden_lungs_auc,
        "freeze_depth": config["freeze_depth"],
        "search_s": round(seconds),
        "val_sensitivity": val.op_sensitivity,
        "val_specificity": val.op_specificity,
        "test_sensitivity": test and test.op_sensitivity,
        "test_specificity": test and test.op_specificity,
        "sample_focus": val.lung_focus,
        "sample_focus_ratio": val.lung_focus_ratio,
        "human_focus": ext and ext.lung_focus,
        "human_focus_ratio": ext and ext.lung_focus_ratio,
        "human_focus_n": ext and ext.lung_focus_n,
        "human_pointing": ext and ext.pointing_game,
        "external_n": ext and ext.covid_sensitivity is not None and _count(ext),
        "external_sensitivity": ext and ext.op_sensitivity,
        "external_sensitivity_ci": ext and [ext.op_sensitivity_low, ext.op_sensitivity_high],
    }


def _count(row: Any) -> int | None:
    confusion = json.loads(row.confusion_json or "null")
    return None if confusion is None else int(sum(map(sum, confusion)))


def study_name(region: str, args: argparse.Namespace) -> str:
    """The region(s), and what else the study was run with (each variant is its own study)."""
    name = region if args.min_lung_focus_ratio is None else f"{region}-min-ratio-{args.min_lung_focus_ratio:g}"
    name = name if args.max_hidden_lungs_auc is None else f"{name}-max-hidden-{args.max_hidden_lungs_auc:g}"
    return name if not args.focus_weight else f"{name}-focus-{args.focus_weight:g}"


def _label(region: str, args: argparse.Namespace) -> str:
    extra = [f"ratio >= {args.min_lung_focus_ratio:g}"] if args.min_lung_focus_ratio is not None else []
    extra += [f"AUC lungs hidden <= {args.max_hidden_lungs_auc:g}"] if args.max_hidden_lungs_auc is not None else []
    extra += [f"focus weight {args.focus_weight:g}"] if args.focus_weight else []
    return region if not extra else f"{region} ({', '.join(extra)})"


def _space_text(region: str, args: argparse.Namespace) -> str:
    """The study's space: ``region`` is one region, or several joined by ``+`` (searched in one study)."""
    text = SPACE.format(regions=json.dumps(region.split("+")))
    text = text.replace("[training]", f"focus_weight = {args.focus_weight}\n\n[training]")
    if args.min_lung_focus_ratio is not None:
        text += f"min_lung_focus_ratio = {args.min_lung_focus_ratio}\n"
    if args.max_hidden_lungs_auc is not None:
        text += f"max_hidden_lungs_auc = {args.max_hidden_lungs_auc}\n"
    return text


def _trials(storage: str, study: str) -> dict[str, Any]:
    """Every trial of the study by region and state, and how many completed ones meet its constraints."""
    from search import study_info
    from search.store import ResultStore

    info = study_info(storage, study)
    store = ResultStore(storage)
    try:
        rows = store.trials(study)
    finally:
        store.dispose()
    by_region: dict[str, dict[str, int]] = {}
    for r in rows:
        counts = by_region.setdefault(r.input_region or "full", {})
        counts[r.state] = counts.get(r.state, 0) + 1
    completed = [r for r in rows if r.state == "COMPLETE"]
    figures: dict[str, Any] = {"by_region": by_region, "completed": len(completed), "feasible": None}
    if info.ranking.constrained and completed:
        # What the same trials give without the constraint: the top of the ranking with none.
        free = min(completed, key=replace(info.ranking, min_lung_focus_ratio=None, max_hidden_lungs_auc=None).key)
        figures["feasible"] = sum(info.ranking.feasible(r) for r in completed)
        figures["unconstrained_top"] = {
            "trial": free.trial_number,
            "region": free.input_region,
            "backbone": free.backbone,
            "val_sensitivity": free.op_sensitivity,
            "hidden_lungs_auc": free.hidden_lungs_auc,
            "sample_focus": free.lung_focus,
        }
    return figures


def run_region(region: str, args: argparse.Namespace, external: Path) -> dict[str, Any]:
    name = study_name(region, args)
    folder = args.out / name
    folder.mkdir(parents=True, exist_ok=True)
    storage, study, log = f"sqlite:///{folder / 'optuna.db'}", f"region-{name}", folder / "log.txt"
    done = folder / "figures.json"
    if done.exists() and not args.refresh:
        return dict(json.loads(done.read_text()))
    space = folder / "space.toml"
    space.write_text(_space_text(region, args))
    seconds = 0.0
    if not (folder / "searched").exists():
        seconds = _run(
            ["-m", "search.launch", "--trials", str(args.trials), "--data", str(args.data), "--storage", storage,
             "--study", study, "--config", str(space), "--weights", args.weights, "--lung-model", args.lung_model,
             "--seed", "0", "--split-seed", "0"], log,
        )  # fmt: skip
        (folder / "searched").write_text(f"{seconds:.0f}\n")
    seconds = float((folder / "searched").read_text())
    rows = _rows(storage, study)
    top = rows["val"].trial_number
    if "test" not in rows:
        _run(["-m", "search.evaluate", "--study", study, "--trial", str(top), "--storage", storage], log)
    if f"external:{EXTERNAL}" not in rows:
        _run(["-m", "search.evaluate", "--study", study, "--trial", str(top), "--storage", storage,
              "--external", str(external), "--name", EXTERNAL], log)  # fmt: skip
    figures = {**_figures(_rows(storage, study), seconds), **_trials(storage, study)}
    done.write_text(json.dumps(figures, indent=2))
    return figures


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def _interval(bounds: list[float] | None) -> str:
    return "" if not bounds or None in bounds else f"[{_pct(bounds[0])}, {_pct(bounds[1])}]"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _by_region(f: dict[str, Any]) -> str:
    """``full 3/5, lung_mask 4/4``: completed of all trials per region (and how many are feasible)."""
    counts = f.get("by_region") or {}
    text = ", ".join(f"{r} {c.get('COMPLETE', 0)}/{sum(c.values())}" for r, c in sorted(counts.items()))
    return text + ("" if f.get("feasible") is None else f"; feasible {f['feasible']}/{f.get('completed')}")


def table(results: dict[str, dict[str, Any]]) -> str:
    head = (
        "| study | top trial | val sens / spec % | test sens / spec % | focus on sample (segmenter) share / ratio "
        "| focus on human masks share / ratio / peak in lungs (n) | external COVID sensitivity % (n) "
        "| AUC lungs hidden | trials: completed/all by region | search s |"
    )
    lines = [head, "|" + "---|" * 10]
    for region, f in results.items():
        lines.append(
            f"| {region} | {f['trial']} {f.get('region') or ''} {f['backbone']} fd={f['freeze_depth']} "
            f"| {_pct(f['val_sensitivity'])} / {_pct(f['val_specificity'])} "
            f"| {_pct(f['test_sensitivity'])} / {_pct(f['test_specificity'])} "
            f"| {_pct(f['sample_focus'])} / {_num(f['sample_focus_ratio'])} "
            f"| {_pct(f['human_focus'])} / {_num(f['human_focus_ratio'])} / {_pct(f.get('human_pointing'))} "
            f"({f['human_focus_n']}) "
            f"| {_pct(f['external_sensitivity'])} {_interval(f.get('external_sensitivity_ci'))} ({f['external_n']}) "
            f"| {_num(f.get('hidden_lungs_auc'))} | {_by_region(f)} | {f['search_s']} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.lung_region", description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--weights", default=str(SHARED / "weights"))
    parser.add_argument("--lung-model", default="auto")
    parser.add_argument("--regions", default=",".join(REGIONS))
    parser.add_argument("--out", type=Path, default=Path(".bench/lung-region"))
    parser.add_argument("--refresh", action="store_true", help="read the figures from the databases again")
    parser.add_argument(
        "--min-lung-focus-ratio",
        type=float,
        help="search each region under this lung-focus constraint (separate studies, named with it)",
    )
    parser.add_argument(
        "--max-hidden-lungs-auc",
        type=float,
        help="search each study under this lungs-hidden constraint (separate studies, named with it)",
    )
    parser.add_argument(
        "--focus-weight",
        type=float,
        default=0.0,
        help="train every trial with this penalty on Grad-CAM evidence outside the lungs (separate studies)",
    )
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    external = external_set(args.out)
    print(f"data {shown(args.data)}, external set {shown(MASKS)} ({len(list((external / 'COVID/images').iterdir()))} "
          f"frontal X-rays), {args.trials} trials per region")  # fmt: skip
    results = {_label(r, args): run_region(r, args, external) for r in args.regions.split(",")}
    print(table(results))
    for label, f in results.items():
        if f.get("unconstrained_top"):
            u = f["unconstrained_top"]
            print(f"{label}: without the constraint the same trials' top is trial {u['trial']} ({u['region']}, "
                  f"{u['backbone']}): val sens {_pct(u['val_sensitivity'])}%, AUC lungs hidden "
                  f"{_num(u['hidden_lungs_auc'])}, focus on sample {_pct(u['sample_focus'])}%")  # fmt: skip
    points = reference_points(external)
    print("\nreference points on the human masks (share of heatmap energy inside the lungs):")
    for name, share in points.items():
        what = "the lungs, evenly, seen by a 7x7 Grad-CAM" if name == "7x7 lungs" else f"a flat map over the {name}"
        print(f"  {what:<60} {100 * share:5.1f}%")
    saved = args.out / "results.json"  # every run's figures, by region (and constraint)
    earlier = json.loads(saved.read_text()) if saved.is_file() else {}
    saved.write_text(json.dumps({**earlier, **results, "reference_points": points}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

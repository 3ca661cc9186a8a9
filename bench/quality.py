"""Winner quality: the README's main job and its exports against the usual recipe, on the test split.

    python -m bench.quality [--seeds 0,1,2] [--trials 20] [--out DIR] [--skip-refit]

For each seed (the split seed and the search seed), in a folder of its own:

1. the README's main job (``make run``): ``python -m search.launch --trials 20 --timeout 1500``
   with the default space;
2. three exports of that study: the single top-ranked trial (``--ensemble 1``), the default
   ensemble, and the ensemble refitted on train+validation (``--refit``);
3. the usual recipe on the same split: one frozen DenseNet121 at 224 px + Dense(256) with
   dropout 0.5, Adam 1e-3, early stopping on validation loss (patience 5, at most 30 epochs),
   deciding by argmax; no search.

Every model is then measured on the seed's test split, which nothing above read: COVID
sensitivity and specificity at the model's own decision (the card's threshold, or argmax for
the usual recipe), accuracy, COVID AUC, and sensitivity at specificity 0.95 read off the test
ROC curve (the same operating point for every model, whatever its own decision rule), each
with a 95% interval (Wilson for proportions, 2,000 stratified bootstrap resamples for the AUC
and the ROC point). It prints one table per seed, then the differences to the usual recipe.

Then every model again on images from elsewhere (``--external``, by default the human-masked
frontal X-rays of ``../shared/cxr/lung-masks``, all COVID; copies of the sample's images are
left out by hash, as ``search.evaluate --external`` does): COVID sensitivity at the model's own
decision, and where its COVID Grad-CAM lies on the human-drawn lungs (share of the evidence
inside them, ratio to the lungs' area, share of X-rays whose heatmap peaks in them). The usual
recipe is read twice there: by argmax, its own rule, and at the threshold chosen on its
validation images for specificity 0.95, the exports' rule.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench._paths import SHARED, shown

DATA = SHARED / "cxr" / "radiography" / "COVID-19_Radiography_Dataset"
STUDY = "cxr-search"
USUAL = {
    "backbone": "DenseNet121", "freeze_depth": 1.0, "head_width": 256, "dropout": 0.5, "learning_rate": 1e-3,
    "augment_strength": 0.0, "scheme": "three", "image_size": 224, "max_epochs": 30, "patience": 5,
}  # fmt: skip
BOOTSTRAP = 2000


def _run(args: list[str], cwd: Path, log: Path) -> float:
    started = time.perf_counter()
    with log.open("a") as out:
        done = subprocess.run([sys.executable, *args], cwd=cwd, stdout=out, stderr=subprocess.STDOUT, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args[:3])} failed with exit code {done.returncode}; see {log}")
    return time.perf_counter() - started


def _sens_at_spec(is_covid: np.ndarray, score: np.ndarray, specificity: float = 0.95) -> float:
    """The highest sensitivity any threshold reaches on this set while keeping ``specificity``."""
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(is_covid, score)
    return float(tpr[fpr <= 1 - specificity + 1e-12].max())


def _bootstrap(is_covid: np.ndarray, score: np.ndarray, seed: int) -> dict[str, tuple[float, float]]:
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(seed)
    pos, neg = np.flatnonzero(is_covid), np.flatnonzero(~is_covid)
    aucs, points = [], []
    for _ in range(BOOTSTRAP):
        pick = np.concatenate([rng.choice(pos, len(pos)), rng.choice(neg, len(neg))])
        aucs.append(roc_auc_score(is_covid[pick], score[pick]))
        points.append(_sens_at_spec(is_covid[pick], score[pick]))
    return {name: (float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))) for name, v in
            (("covid_auc", aucs), ("sens_at_spec95", points))}  # fmt: skip


def measure(labels: np.ndarray, proba: np.ndarray, threshold: float | None, seed: int) -> dict[str, Any]:
    """Test figures of one model: at its own decision, and at specificity 0.95 on the test ROC."""
    from sklearn.metrics import roc_auc_score

    from search.metrics import wilson_interval

    is_covid = labels == 0
    score = proba[:, 0]
    flagged = score >= threshold if threshold is not None else proba.argmax(axis=1) == 0
    tp, fn = int((flagged & is_covid).sum()), int((~flagged & is_covid).sum())
    tn, fp = int((~flagged & ~is_covid).sum()), int((flagged & ~is_covid).sum())
    correct = int((proba.argmax(axis=1) == labels).sum())
    boot = _bootstrap(is_covid, score, seed)
    return {
        "n": len(labels),
        "sensitivity": (tp / (tp + fn), wilson_interval(tp, tp + fn)),
        "specificity": (tn / (tn + fp), wilson_interval(tn, tn + fp)),
        "accuracy": (correct / len(labels), wilson_interval(correct, len(labels))),
        "covid_auc": (float(roc_auc_score(is_covid, score)), boot["covid_auc"]),
        "sens_at_spec95": (_sens_at_spec(is_covid, score), boot["sens_at_spec95"]),
    }


def _test_set(sd: Any) -> tuple[Any, Any, Any, np.ndarray]:
    """The study's split, the winner's inputs (its region) and the whole images, and the usable test indices."""
    from search.evaluate import usable_test_indices
    from search.space import TrialConfig

    row = sd.store.ranked(STUDY, limit=1, ranking=sd.info.ranking)[0]
    split = sd.split(row)
    winner = sd.inputs(TrialConfig.from_json(row.config_json))  # ensemble members share the winner's region
    whole = sd.trial_data.arrays(sd.info.space.training.image_size, sd.info.space.training.crop)
    return split, winner, whole, usable_test_indices(split, whole, STUDY)


def _exported(folder: Path, split: Any, arrays: Any, test: np.ndarray, seed: int) -> dict[str, Any]:
    import keras

    from search.evaluate import predict

    card = json.loads((folder / "model_card.json").read_text())
    model = keras.models.load_model(folder / "model.keras", safe_mode=True)
    proba = predict(model, arrays, test, split.labels, 32)
    figures = measure(split.labels[test], proba, card["decision"]["threshold"], seed)
    figures["members"] = [f"{m['trial']}:{m['backbone']}:{m['weight']:.2f}" for m in card["members"]]
    return figures


def _usual(sd: Any, split: Any, arrays: Any, test: np.ndarray, seed: int) -> tuple[dict[str, Any], Any]:
    """The usual recipe, trained with the project's own trial runner on the same split (and its outcome)."""
    from search import run_trial
    from search.evaluate import predict
    from search.space import TrialConfig

    config = TrialConfig(**USUAL, weights=sd.info.weights, seed=seed)  # type: ignore[arg-type]
    started = time.perf_counter()
    outcome = run_trial(config, sd.trial_data, keep_model=True)
    assert outcome.built is not None
    proba = predict(outcome.built.model, arrays, test, split.labels, 32)
    figures = measure(split.labels[test], proba, None, seed)
    figures["members"] = [f"usual:DenseNet121 ({outcome.fit.epochs_run} epochs, {time.perf_counter() - started:.0f}s)"]
    return figures, outcome


def _external_figures(result: Any) -> dict[str, Any]:
    """COVID sensitivity at the model's decision and lung focus, from a ``measure_external`` result."""
    m, focus = result.metrics, result.focus
    op = m.operating
    sens, ci = (op.sensitivity, op.sensitivity_ci) if op is not None else (m.covid_sensitivity, m.covid_sensitivity_ci)
    return {
        "n": m.n,
        "sensitivity": (sens, ci),
        "focus": None if focus is None else {"share": focus.energy, "ratio": focus.ratio, "peak": focus.pointing,
                                             "n": focus.n, "blank": focus.blank},
        "left_out": (result.set.exact_copies or 0) + (result.set.near_copies or 0),
    }  # fmt: skip


def _external_usual(sd: Any, outcome: Any, external: Path) -> dict[str, dict[str, Any]]:
    """The usual recipe on the external set: by argmax, and at its validation threshold for spec 0.95."""
    from cxrdata import get_scheme
    from search._external import StudyHashes, default_segmenter, gradcam_of, measure_external, prepare_external
    from search.backbones import get_backbone
    from search.gradcam import gradcam_layer_of
    from search.metrics import DEFAULT_TARGET

    config, model = outcome.config, outcome.built.model
    prepared = prepare_external(external, external.name, get_scheme(config.scheme), StudyHashes.of(sd.manifest))
    heatmaps = gradcam_of(model, [(gradcam_layer_of(model, get_backbone(config.backbone).gradcam_layer), 1.0)])
    segmenter = default_segmenter(None)
    threshold = outcome.metrics.operating.threshold if outcome.metrics.operating is not None else None
    rules = {
        "usual recipe": (None, None, "argmax"),
        "usual recipe, val threshold": (threshold, DEFAULT_TARGET, "validation threshold for spec 0.95"),
    }
    return {
        name: _external_figures(
            measure_external(model, config, prepared, threshold=t, target=target, threshold_from=words,
                             heatmaps=heatmaps, segmenter=segmenter)
        )
        for name, (t, target, words) in rules.items()
    }  # fmt: skip


def _external_export(folder: Path, external: Path, storage: str) -> dict[str, Any]:
    from search.evaluate import evaluate_folder

    return _external_figures(evaluate_folder(folder, str(external), external.name, storage).result)


def run_seed(seed: int, args: argparse.Namespace) -> dict[str, Any]:
    folder = args.out / f"seed-{seed}"
    folder.mkdir(parents=True, exist_ok=True)
    storage = f"sqlite:///{folder / 'optuna.db'}"
    log = folder / "log.txt"
    times: dict[str, float] = {}
    if not (folder / "optuna.db").exists():
        times["search"] = _run(
            ["-m", "search.launch", "--trials", str(args.trials), "--timeout", "1500", "--data", str(args.data),
             "--weights", args.weights, "--seed", str(seed), "--split-seed", str(seed)], folder, log,
        )  # fmt: skip
    exports = {"single": ["--ensemble", "1"], "ensemble": []}
    if not args.skip_refit:
        exports["ensemble refit"] = ["--refit"]
    for name, extra in exports.items():
        out = folder / name.replace(" ", "-")
        if not (out / "model_card.json").exists():
            times[name] = _run(
                ["-m", "search.export", "--study", STUDY, "--storage", storage, "--out", str(out), "--force", *extra],
                folder, log,
            )  # fmt: skip
    from search.evaluate import study_data

    sd = study_data(storage, STUDY)  # once: it scans the dataset
    split, winner, whole, test = _test_set(sd)
    results = {name: _exported(folder / name.replace(" ", "-"), split, winner, test, seed) for name in exports}
    results["usual recipe"], usual = _usual(sd, split, whole, test, seed)
    external: dict[str, Any] = {}
    if args.external is not None:
        external = {name: _external_export(folder / name.replace(" ", "-"), args.external, storage) for name in exports}
        external.update(_external_usual(sd, usual, args.external))
    run = {"results": results, "external": external, "seconds": times}
    (folder / "quality.json").write_text(json.dumps(run, indent=2))
    return run


def _cell(value: tuple[float, tuple[float, float] | None]) -> str:
    point, ci = value
    return f"{point:.3f}" + ("" if ci is None else f" [{ci[0]:.3f}, {ci[1]:.3f}]")


COLUMNS = ("sensitivity", "specificity", "accuracy", "covid_auc", "sens_at_spec95")
HEADER = ("COVID sens (own rule)", "COVID spec (own rule)", "accuracy", "COVID AUC", "sens @ spec 0.95 (test ROC)")


def table(seed: int, run: dict[str, Any]) -> str:
    rows = [("model", *HEADER, "members (trial:backbone:weight)")]
    for name, r in run["results"].items():
        rows.append((name, *(_cell(r[c]) for c in COLUMNS), " ".join(r["members"])))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    n = next(iter(run["results"].values()))["n"]
    lines = [f"seed {seed}: test split, {n} images; seconds {json.dumps(run['seconds'])}"]
    lines += ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(lines)


def _pct(value: float | None, ci: Any = None) -> str:
    if value is None:
        return "-"
    return f"{100 * value:.1f}" + ("" if ci is None else f" [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]")


def external_table(seed: int, run: dict[str, Any]) -> str:
    if not run["external"]:
        return ""
    rows = [("model", "COVID sens % (own rule)", "focus on human masks share % / ratio / peak in lungs %", "n")]
    for name, r in run["external"].items():
        f = r["focus"]
        focus = "-" if f is None else f"{_pct(f['share'])} / {f['ratio'] or 0:.2f} / {_pct(f['peak'])} ({f['n']})"
        rows.append((name, _pct(*r["sensitivity"]), focus, str(r["n"])))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    first = next(iter(run["external"].values()))
    lines = [f"seed {seed}: external set, {first['n']} images ({first['left_out']} copies of sample images left out)"]
    lines += ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(lines)


def summary(runs: dict[int, dict[str, Any]]) -> str:
    lines = ["difference to the usual recipe on each seed's test split (points of sensitivity at spec 0.95; AUC):"]
    for name in next(iter(runs.values()))["results"]:
        if name == "usual recipe":
            continue

        def gain(figure: str, scale: float, run: dict[str, Any], model: str = name) -> float:
            return scale * float(run["results"][model][figure][0] - run["results"]["usual recipe"][figure][0])

        gains = " ".join(f"{gain('sens_at_spec95', 100, r):+.1f}" for r in runs.values())
        aucs = " ".join(f"{gain('covid_auc', 1, r):+.4f}" for r in runs.values())
        specs = " ".join(f"{r['results'][name]['specificity'][0]:.3f}" for r in runs.values())
        lines.append(
            f"  {name:<15} sens@spec0.95 {gains}   AUC {aucs}   test specificity at the card's threshold {specs}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--weights", default=str(SHARED / "weights"))
    parser.add_argument("--out", type=Path, default=Path("/tmp/b-quality"))
    parser.add_argument("--skip-refit", action="store_true")
    parser.add_argument(
        "--external", default="lung-masks",
        help="a labelled folder from elsewhere to score every model on; 'lung-masks' (default): the human-masked "
        "frontal X-rays of ../shared/cxr/lung-masks; 'none': skip",
    )  # fmt: skip
    args = parser.parse_args()
    if args.external == "none":
        args.external = None
    elif args.external == "lung-masks":
        from bench.lung_region import external_set

        args.out.mkdir(parents=True, exist_ok=True)
        args.external = external_set(args.out)
    else:
        args.external = Path(args.external)
    print(f"data {shown(args.data)}, weights {shown(Path(args.weights))}, {args.trials} trials per seed\n")
    runs = {}
    for seed in (int(s) for s in args.seeds.split(",")):
        runs[seed] = run_seed(seed, args)
        print(table(seed, runs[seed]) + "\n", flush=True)
        if runs[seed]["external"]:
            print(external_table(seed, runs[seed]) + "\n", flush=True)
    print(summary(runs))


if __name__ == "__main__":
    main()

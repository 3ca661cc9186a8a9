"""``python -m search.export --study NAME --out DIR``: package the winning model, ready to serve.

Evaluates the trial once on the test split, writes the Keras model (the backbone's
preprocessing inside: an RGB image in [0, 255] at the model's size in, class probabilities
out), a TensorFlow SavedModel and a TFLite file, and a model card (JSON and Markdown). It then
reloads what it wrote and checks the predictions against the in-memory model before it says
it succeeded.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from cxrdata import DatasetError
from search._errors import SearchError
from search.store import MIN_SPECIFICITY, TrialRow, focus_like_flat_map, meets_floor

__all__ = ["FORMATS", "KERAS_TOLERANCE", "TFLITE_TOLERANCE", "ExportResult", "export", "main", "result_caveats"]

FORMATS = ("keras", "savedmodel", "tflite")
KERAS_TOLERANCE = 1e-5  # the same graph and weights reloaded: only float noise
TFLITE_TOLERANCE = 1e-3  # TFLite fuses and reorders float ops; probabilities still agree to 3 decimals
SAMPLE_IMAGES = 16
WARNING = (
    "Research model from an automated search. Not a medical device and not validated for clinical use; "
    "do not use it to diagnose, triage or exclude COVID-19 in patients."
)
INTENDED_USE = (
    "Research and method development on chest X-rays: comparing transfer-learning models, studying shortcuts, "
    "and as a baseline for properly validated work."
)


@dataclass(frozen=True)
class ExportResult:
    folder: Path
    card: dict[str, Any]


def _versions() -> dict[str, str]:
    out = {}
    for name in ("cxr-search", "tensorflow", "tensorflow-cpu", "keras", "numpy", "optuna", "scikit-learn"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def _check_out(out: Path, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise SearchError(f"`--out` must be a folder, but '{out}' is a file.")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise SearchError(
            f"`--out` must be a new or empty folder (nothing is overwritten), but '{out}' holds files; use --force."
        )


def _check_formats(formats: Sequence[str]) -> tuple[str, ...]:
    from cxrdata import did_you_mean

    for name in formats:
        if name not in FORMATS:
            raise SearchError(
                f"`--formats` must be among {', '.join(FORMATS)}, but got {name!r}.{did_you_mean(name, FORMATS)}"
            )
    if "keras" not in formats:
        raise SearchError(
            f"`--formats` must include keras (the other formats are made from it), but got {list(formats)}."
        )
    return tuple(formats)


def _write(model: Any, out: Path, formats: Sequence[str]) -> dict[str, str]:
    files = {"keras": "model.keras"}
    model.save(out / "model.keras")
    if "savedmodel" in formats:
        model.export(str(out / "saved_model"), format="tf_saved_model", verbose=False)
        files["savedmodel"] = "saved_model/"
    if "tflite" in formats:
        import tensorflow as tf

        source = out / "saved_model" if "savedmodel" in formats else None
        if source is None:
            source = out / ".saved_model_for_tflite"
            model.export(str(source), format="tf_saved_model", verbose=False)
        (out / "model.tflite").write_bytes(tf.lite.TFLiteConverter.from_saved_model(str(source)).convert())
        files["tflite"] = "model.tflite"
    return files


def _tflite_predict(path: Path, images: np.ndarray) -> np.ndarray:
    import tensorflow as tf

    interpreter = tf.lite.Interpreter(model_path=str(path))
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    interpreter.resize_tensor_input(inp["index"], images.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(inp["index"], images.astype(np.float32))
    interpreter.invoke()
    return np.asarray(interpreter.get_tensor(out["index"]))


def verify(out: Path, expected: np.ndarray, images: np.ndarray, files: dict[str, str]) -> dict[str, float]:
    """Reload every written file and compare its predictions; fail with the worst difference."""
    import keras
    import tensorflow as tf

    diffs = {
        "keras": float(
            np.abs(
                keras.models.load_model(out / files["keras"], safe_mode=True).predict(images, verbose=0) - expected
            ).max()
        )
    }
    if "savedmodel" in files:
        loaded = tf.saved_model.load(str(out / "saved_model"))  # keep a reference: it owns the variables
        served = loaded.serve(tf.constant(images, tf.float32))
        diffs["savedmodel"] = float(np.abs(np.asarray(served) - expected).max())
    if "tflite" in files:
        diffs["tflite"] = float(np.abs(_tflite_predict(out / files["tflite"], images) - expected).max())
    for name, diff in diffs.items():
        limit = TFLITE_TOLERANCE if name == "tflite" else KERAS_TOLERANCE
        if not diff <= limit:
            raise SearchError(
                f"The reloaded {name} model must predict within {limit} of the trained model, "
                f"but differs by {diff:.2e}."
            )
    return diffs


def _metrics_dict(row: Any) -> dict[str, Any]:
    names = (
        "accuracy",
        "balanced_accuracy",
        "covid_sensitivity",
        "covid_specificity",
        "covid_ppv",
        "covid_npv",
        "covid_auc",
        "roc_auc",
    )
    out = {n: getattr(row, n) for n in names}
    out["per_class"] = json.loads(row.per_class_json) if row.per_class_json else None
    out["confusion"] = json.loads(row.confusion_json) if row.confusion_json else None
    return out


def _markdown(card: dict[str, Any]) -> str:
    val, test = card["validation"], card["test"]

    def f(v: Any) -> str:
        return "n/a" if v is None else f"{v:.3f}"

    rows = "\n".join(
        f"| {label} | {f(val[k])} | {f(test[k])} |"
        for k, label in (("covid_sensitivity", "COVID sensitivity"), ("covid_specificity", "COVID specificity"),
                         ("covid_ppv", "COVID PPV"), ("accuracy", "accuracy"), ("roc_auc", "AUC (macro OvR)"))
    )  # fmt: skip
    caveats = "\n".join(f"- {c}" for c in card["caveats"]) or "- none found"
    title = f"{card['config']['backbone']} ({card['scheme']} scheme), trial {card['trial']} of {card['study']}"
    return f"""# Model card: {title}

> **{WARNING}**

Intended use: {INTENDED_USE}

- Classes (output order): {", ".join(card["classes"])}; COVID is output {card["covid_class_index"]}.
- Input: {card["input"]["size"]}x{card["input"]["size"]} RGB, float32 in [0, 255]; decode any PNG/JPEG to 8-bit RGB,
  cut {card["input"]["crop_fraction_per_side"]:g} of each side, resize bilinearly (squash) to the input size.
  `python -m search.predict --model DIR IMAGE...` does exactly this.
- Decision: {card["decision"]["rule"]}.
- Lung focus (Grad-CAM energy inside the lungs): {f(card["lung_focus"])}.
- Dataset fingerprint {card["dataset"]["fingerprint"]}, split fingerprint {card["dataset"]["split_fingerprint"]}.

| metric | validation | test (measured once, at export) |
|---|---|---|
{rows}

Caveats (where a result could be a shortcut):
{caveats}

Files: {", ".join(card["files"].values())}. Reloaded and checked against the trained model: {card["parity"]}.
"""


def _caveats(split: Any, manifest: Any, row: TrialRow) -> list[str]:
    from cxrdata import leak_report

    report = leak_report(manifest, split)
    out = [
        f"Source '{s}' supplies only {label} images: the model may have learnt the source."
        for s, label in report.confounded_sources.items()
    ]
    if report.cross_split_duplicates or report.cross_split_patients:
        out.append("Duplicates or patients cross the splits: test figures may be optimistic.")
    return out + result_caveats(row.covid_specificity, row.lung_focus, row.lung_focus_ratio)


def result_caveats(specificity: float | None, lung_focus: float | None, focus_ratio: float | None) -> list[str]:
    """What the trial's own validation figures say about a possible shortcut or a degenerate model."""
    out = []
    if not meets_floor(specificity):
        out.append(
            f"Validation COVID specificity is {'unknown' if specificity is None else f'{specificity:.2f}'}, "
            f"below {MIN_SPECIFICITY:.2f}: the model calls many other X-rays COVID, so its sensitivity means little."
        )
    if lung_focus is None:
        out.append("Lung focus was not measured: it is unknown whether the model looks at the lungs.")
    elif focus_like_flat_map(focus_ratio):
        out.append(
            f"Grad-CAM evidence is no more concentrated in the lungs than a uniform map would be (lung focus / "
            f"lung area {focus_ratio:.2f} < 1): the model may rely on what lies outside the lungs."
        )
    return out


def export(
    storage: str,
    study: str,
    out: Path,
    *,
    trial: int | None = None,
    formats: Sequence[str] = FORMATS,
    data: str | None = None,
    threshold: float | None = None,
    force: bool = False,
) -> ExportResult:
    from search.evaluate import evaluate_trial
    from search.space import TrialConfig

    formats = _check_formats(formats)
    _check_out(out, force)
    if threshold is not None and not 0 < threshold < 1:
        raise SearchError(f"`0 < threshold < 1` must hold, but got threshold={threshold}.")
    done = evaluate_trial(storage, study, trial, data=data)
    row, config = done.row, TrialConfig.from_json(done.row.config_json)
    out.mkdir(parents=True, exist_ok=True)
    files = _write(done.model, out, formats)
    sample = done.split.indices["test"][:SAMPLE_IMAGES]
    images = np.asarray(done.arrays.images[sample], dtype=np.float32)
    parity = verify(out, done.model.predict(images, verbose=0), images, files)

    from search.backbones import get_backbone
    from search.gradcam import gradcam_layer_of

    info, manifest = done.info, done.manifest  # loaded once, by the evaluation
    spec = get_backbone(config.backbone)
    card = {
        "study": study,
        "trial": row.trial_number,
        "engine": row.engine,
        "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "classes": list(done.split.scheme.class_names),
        "scheme": config.scheme,
        "covid_class_index": 0,
        "input": {
            "size": config.image_size,
            "channels": "RGB",
            "dtype": "float32",
            "range": [0, 255],
            "crop_fraction_per_side": config.crop,
        },
        "decision": {
            "rule": "the class with the highest probability"
            if threshold is None
            else f"COVID when its probability >= {threshold}",
            "threshold": threshold,
        },
        "gradcam_layer": gradcam_layer_of(done.model, spec.gradcam_layer),
        "config": asdict(config),
        "validation": _metrics_dict(row),
        "test": {**asdict(done.metrics), "class_names": list(done.metrics.class_names)},
        "lung_focus": row.lung_focus,
        "dataset": {
            "path": info.data_path,
            "fingerprint": info.dataset_fingerprint,
            "split_fingerprint": row.split_fingerprint,
            "split_counts": done.split.counts(),
        },
        "versions": _versions(),
        "intended_use": INTENDED_USE,
        "warning": WARNING,
        "caveats": _caveats(done.split, manifest, row),
        "files": files,
        "parity": parity,
    }
    (out / "model_card.json").write_text(json.dumps(card, indent=2, default=str))
    (out / "MODEL_CARD.md").write_text(_markdown(card))
    return ExportResult(out, card)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m search.export", description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--study", required=True)
    parser.add_argument("--out", required=True, type=Path, help="a new or empty folder")
    parser.add_argument("--trial", type=int, help="trial number (default: the top-ranked trial)")
    parser.add_argument("--storage", default="sqlite:///optuna.db")
    parser.add_argument("--formats", default=",".join(FORMATS), help=f"comma-separated: {', '.join(FORMATS)}")
    parser.add_argument("--threshold", type=float, help="COVID decision threshold on its probability (default: argmax)")
    parser.add_argument("--data", help="dataset path on this machine (default: the study's)")
    parser.add_argument("--force", action="store_true", help="write into a folder that already holds files")
    args = parser.parse_args(argv)
    try:
        result = export(
            args.storage, args.study, args.out, trial=args.trial, formats=[f.strip() for f in args.formats.split(",")],
            data=args.data, threshold=args.threshold, force=args.force,
        )  # fmt: skip
    except (SearchError, DatasetError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    card = result.card
    print(
        f"Exported trial {card['trial']} ({card['config']['backbone']}) to {result.folder}: "
        f"{', '.join(card['files'].values())}"
    )
    print(f"Checked after reloading: {card['parity']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

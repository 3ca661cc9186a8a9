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
from search.ensemble import Selection, build_ensemble, select_ensemble
from search.evaluate import StudyData, predict, row_target, study_data, usable_test_indices
from search.metrics import COVID_LABEL, OperatingTarget, TrialMetrics, compute_metrics
from search.space import TrialConfig
from search.store import MIN_SPECIFICITY, Predictions, ResultStore, TrialRow, focus_like_flat_map, meets_floor

__all__ = [
    "DEFAULT_ENSEMBLE",
    "FORMATS",
    "KERAS_TOLERANCE",
    "TFLITE_TOLERANCE",
    "ExportResult",
    "export",
    "main",
    "result_caveats",
]

FORMATS = ("keras", "savedmodel", "tflite")
KERAS_TOLERANCE = 1e-5  # the same graph and weights reloaded: only float noise
TFLITE_TOLERANCE = 1e-3  # TFLite fuses and reorders float ops; probabilities still agree to 3 decimals
SAMPLE_IMAGES = 16
DEFAULT_ENSEMBLE = 5  # candidates: the top trials with a saved model (launch keeps the top 5 by default)
_FIGURES = (
    "accuracy", "balanced_accuracy", "covid_sensitivity", "covid_specificity", "covid_ppv", "covid_npv", "covid_auc",
    "roc_auc",
)  # fmt: skip
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


def _summary(m: TrialMetrics) -> dict[str, Any]:
    """The figures of one split, flat, for the card (argmax figures, then the operating point)."""
    out: dict[str, Any] = {
        "split": m.split,
        "n": m.n,
        **{name: getattr(m, name) for name in _FIGURES},
        "covid_sensitivity_ci": m.covid_sensitivity_ci,
        "covid_specificity_ci": m.covid_specificity_ci,
        "per_class": m.per_class,
        "confusion": m.confusion,
    }
    op = m.operating
    out["at_threshold"] = (
        None
        if op is None
        else {
            "threshold": op.threshold,
            "sensitivity": op.sensitivity,
            "sensitivity_ci": op.sensitivity_ci,
            "specificity": op.specificity,
            "specificity_ci": op.specificity_ci,
        }
    )
    return out


def _row_summary(row: TrialRow) -> dict[str, Any]:
    """The validation figures a trial row stored (for trials recorded without their predictions)."""
    out: dict[str, Any] = {"split": "val", "n": None, **{name: getattr(row, name) for name in _FIGURES}}
    out["per_class"] = json.loads(row.per_class_json) if row.per_class_json else None
    out["confusion"] = json.loads(row.confusion_json) if row.confusion_json else None
    out["at_threshold"] = (
        None
        if row.covid_threshold is None
        else {
            "threshold": row.covid_threshold,
            "sensitivity": row.op_sensitivity,
            "sensitivity_ci": (row.op_sensitivity_low, row.op_sensitivity_high),
            "specificity": row.op_specificity,
            "specificity_ci": (row.op_specificity_low, row.op_specificity_high),
        }
    )
    return out


def _f(v: Any) -> str:
    return "n/a" if v is None else f"{v:.3f}"


def _with_ci(value: Any, ci: Any) -> str:
    if value is None:
        return "n/a"
    return _f(value) + ("" if not ci or ci[0] is None else f" [{ci[0]:.3f}, {ci[1]:.3f}]")


def _metric_rows(val: dict[str, Any], test: dict[str, Any]) -> str:
    rows = []
    for side in (val, test):
        op = side.get("at_threshold") or {}
        side["_op_sens"] = _with_ci(op.get("sensitivity"), op.get("sensitivity_ci"))
        side["_op_spec"] = _with_ci(op.get("specificity"), op.get("specificity_ci"))
    for key, label in (
        ("_op_sens", "COVID sensitivity at the threshold [95% CI]"),
        ("_op_spec", "COVID specificity at the threshold [95% CI]"),
        ("covid_auc", "COVID AUC"),
        ("covid_sensitivity", "COVID sensitivity (argmax)"),
        ("covid_specificity", "COVID specificity (argmax)"),
        ("covid_ppv", "COVID PPV (argmax)"),
        ("accuracy", "accuracy (argmax)"),
        ("roc_auc", "AUC (macro OvR)"),
    ):
        cells = [v if isinstance(v := side.get(key), str) else _f(v) for side in (val, test)]
        rows.append(f"| {label} | {cells[0]} | {cells[1]} |")
    for side in (val, test):
        side.pop("_op_sens"), side.pop("_op_spec")
    return "\n".join(rows)


def _members_text(card: dict[str, Any]) -> str:
    lines = [
        f"  - trial {m['trial']} ({m['backbone']}, freeze {m['config']['freeze_depth']:g}, {m['image_size']} px): "
        f"weight {m['weight']:.2f}"
        for m in card["members"]
    ]
    return "\n".join(lines)


def _markdown(card: dict[str, Any]) -> str:
    val, test = card["validation"], card["test"]
    caveats = "\n".join(f"- {c}" for c in card["caveats"]) or "- none found"
    if card["kind"] == "ensemble":
        title = f"ensemble of {len(card['members'])} trials of {card['study']} ({card['scheme']} scheme)"
        what = (
            "- Model: the weighted average of its members' probabilities (greedy ensemble selection with "
            f"replacement on validation log loss, {card['selection']['rounds']} rounds, over the top "
            f"{len(card['selection']['pool'])} trials with a stored model):\n{_members_text(card)}"
        )
    else:
        m = card["members"][0]
        title = f"{m['backbone']} ({card['scheme']} scheme), trial {m['trial']} of {card['study']}"
        what = f"- Model: trial {m['trial']} of the study, one model."
    if card["refit"]:
        what += (
            "\n- Refit: every member was trained again on train+validation for the epochs its early stopping "
            "found; the threshold and the validation column come from the models before the refit."
        )
    decision = card["decision"]
    return f"""# Model card: {title}

> **{WARNING}**

Intended use: {INTENDED_USE}

{what}
- Classes (output order): {", ".join(card["classes"])}; COVID is output {card["covid_class_index"]}.
- Input: {card["input"]["size"]}x{card["input"]["size"]} RGB, float32 in [0, 255]; decode any PNG/JPEG to 8-bit RGB,
  cut {card["input"]["crop_fraction_per_side"]:g} of each side, resize bilinearly (squash) to the input size.
  `python -m search.predict --model DIR IMAGE...` does exactly this.
- Decision: {decision["rule"]}.
- Lung focus (Grad-CAM energy inside the lungs): {_f(card["lung_focus"])}.
- Dataset fingerprint {card["dataset"]["fingerprint"]}, split fingerprint {card["dataset"]["split_fingerprint"]}.

| metric | validation | test (measured once, at export) |
|---|---|---|
{_metric_rows(val, test)}

Validation figures chose the model and its threshold; only the test column is an estimate for new images
from the same sources, and even it says nothing about other hospitals, devices or populations.

Caveats (where a result could be a shortcut):
{caveats}

Files: {", ".join(card["files"].values())}. Reloaded and checked against the trained model: {card["parity"]}.
"""


def _caveats(split: Any, manifest: Any, choice: Any, validation: dict[str, Any]) -> list[str]:
    from cxrdata import leak_report

    report = leak_report(manifest, split)
    out = [
        f"Source '{s}' supplies only {label} images: the model may have learnt the source."
        for s, label in report.confounded_sources.items()
    ]
    if report.cross_split_duplicates or report.cross_split_patients:
        out.append("Duplicates or patients cross the splits: test figures may be optimistic.")
    rows = [m.row for m in choice.members]
    ratios = [r.lung_focus_ratio for r in rows]
    focus = None if any(r.lung_focus is None for r in rows) else min(r.lung_focus for r in rows)
    ratio = None if any(r is None for r in ratios) else min(r for r in ratios if r is not None)
    return out + result_caveats(validation.get("covid_specificity"), focus, ratio)


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


@dataclass
class _Member:
    row: TrialRow
    config: TrialConfig
    weight: float
    predictions: Predictions | None


@dataclass
class _Choice:
    members: list[_Member]
    selection: Selection | None  # None for a single trial asked for by number
    pool: list[int]  # trial numbers the selection chose from


def _check_choice_args(trial: int | None, ensemble: int | None, members: Sequence[int] | None) -> None:
    if ensemble is not None and ensemble < 1:
        raise SearchError(f"`--ensemble >= 1` must hold (1 exports the top-ranked trial alone), but got {ensemble}.")
    given = [
        name
        for name, value in (("--trial", trial), ("--ensemble", ensemble), ("--members", members))
        if value is not None
    ]
    if len(given) > 1:
        raise SearchError(f"Give at most one of --trial, --ensemble and --members, but got {' and '.join(given)}.")
    if members is not None and len(set(members)) != len(members):
        raise SearchError(f"`--members` must name distinct trials, but got {list(members)}.")


def _eligible(store: ResultStore, study: str, ranking: Any) -> list[TrialRow]:
    """Completed trials with a stored model, best-ranked first."""
    return [r for r in store.ranked(study, ranking=ranking) if any(a.kind == "model" for a in r.artifacts)]


def _check_compatible(rows: Sequence[TrialRow]) -> None:
    kinds = {(r.scheme, r.class_names_json, r.split_fingerprint) for r in rows}
    if len(kinds) > 1:
        named = ", ".join(f"{r.trial_number} ({r.scheme})" for r in rows)
        raise SearchError(
            "An ensemble's members must share one class scheme, class order and split, but trials "
            f"{named} do not; name compatible trials with --members."
        )


def _choose(
    sd: StudyData, study: str, trial: int | None, ensemble: int | None, members: Sequence[int] | None
) -> _Choice:
    from search._records import find_trial

    if trial is not None:
        row = find_trial(sd.store, study, trial)
        found = sd.store.predictions(study, [row]).get(row.trial_number)
        return _Choice([_Member(row, TrialConfig.from_json(row.config_json), 1.0, found)], None, [row.trial_number])
    eligible = _eligible(sd.store, study, sd.info.ranking)
    if not eligible:
        raise SearchError(f"The study must have a completed trial with a saved model, but {study!r} has none yet.")
    if members is not None:
        by_number = {r.trial_number: r for r in eligible}
        missing = [m for m in members if m not in by_number]
        if missing:
            raise SearchError(
                f"`--members` must name completed trials of {study!r} with a saved model, but {missing} are not "
                f"among them ({sorted(by_number)})."
            )
        pool = [by_number[m] for m in members]
    else:
        size = min(DEFAULT_ENSEMBLE, len(eligible)) if ensemble is None else ensemble
        if size > len(eligible):
            raise SearchError(
                f"`--ensemble` must be at most the {len(eligible)} completed trial(s) of {study!r} with a saved "
                f"model, but got {size}."
            )
        pool = eligible[:size]
    _check_compatible(pool)
    stored = sd.store.predictions(study, pool)
    without = [r.trial_number for r in pool if r.trial_number not in stored]
    if len(pool) > 1 and without:
        raise SearchError(
            f"Every ensemble candidate must have stored validation predictions, but trials {without} have none "
            "(they were recorded by an older version); export one of them with --trial."
        )
    numbers = [r.trial_number for r in pool]
    if len(pool) == 1:
        row = pool[0]
        return _Choice(
            [_Member(row, TrialConfig.from_json(row.config_json), 1.0, stored.get(row.trial_number))], None, numbers
        )
    first = stored[pool[0].trial_number]
    for r in pool[1:]:
        other = stored[r.trial_number]
        if not (np.array_equal(other.indices, first.indices) and np.array_equal(other.labels, first.labels)):
            raise SearchError(
                f"Ensemble candidates must be measured on the same validation images, but trials "
                f"{pool[0].trial_number} and {r.trial_number} were not."
            )
    selection = select_ensemble([stored[n].proba for n in numbers], first.labels)
    chosen = [
        _Member(pool[i], TrialConfig.from_json(pool[i].config_json), selection.weights[i], stored[numbers[i]])
        for i in selection.chosen
    ]
    return _Choice(chosen, selection, numbers)


def _validation(
    choice: _Choice, classes: Sequence[str], target: OperatingTarget, threshold: float | None
) -> tuple[dict[str, Any], float | None]:
    """The exported model's validation figures and its COVID threshold (chosen here unless given).

    The ensemble's validation probabilities are its members' stored ones, weighted: exactly
    what the averaged model outputs on those images.
    """
    from search.metrics import choose_threshold

    stored = [m.predictions for m in choice.members]
    if any(p is None for p in stored):  # a single trial recorded before predictions were stored
        row = choice.members[0].row
        return _row_summary(row), threshold if threshold is not None else row.covid_threshold
    first = stored[0]
    assert first is not None
    proba = np.sum([m.weight * p.proba for m, p in zip(choice.members, stored, strict=True) if p is not None], axis=0)
    labels = first.labels
    if threshold is None:
        threshold = choose_threshold(labels == COVID_LABEL, proba[:, COVID_LABEL], target)
    metrics = compute_metrics(labels, proba, classes, split="val", target=target, threshold=threshold)
    return _summary(metrics), threshold


def _load_members(choice: _Choice, sd: StudyData, refit: bool) -> list[Any]:
    import keras

    from search._records import download_model
    from search._trial import refit_trial

    models = []
    for m in choice.members:
        if refit:
            epochs = (m.row.best_epoch if m.row.best_epoch is not None else m.config.max_epochs - 1) + 1
            print(
                f"Refitting trial {m.row.trial_number} on train+validation for {epochs} epoch(s) ...", file=sys.stderr
            )
            models.append(refit_trial(m.config, sd.trial_data, epochs))
        else:
            models.append(keras.models.load_model(download_model(m.row, sd.info), safe_mode=True))
    return models


def _decision(threshold: float | None, target: OperatingTarget, given: bool) -> dict[str, Any]:
    if threshold is None:
        return {"rule": "the class with the highest probability", "threshold": None, "target": None}
    how = "given at export" if given else f"chosen on validation for COVID {target.kind} {target.value:g}"
    return {
        "rule": f"COVID when its probability >= {threshold:.6g} ({how}); otherwise the likeliest other class",
        "threshold": threshold,
        "target": None if given else {"kind": target.kind, "value": target.value},
    }


def _member_card(m: _Member, model: Any) -> dict[str, Any]:
    from search.backbones import get_backbone
    from search.gradcam import gradcam_layer_of

    return {
        "trial": m.row.trial_number,
        "engine": m.row.engine,
        "backbone": m.config.backbone,
        "weight": m.weight,
        "image_size": m.config.image_size,
        "gradcam_layer": gradcam_layer_of(model, get_backbone(m.config.backbone).gradcam_layer),
        "validation_lung_focus": m.row.lung_focus,
        "best_epoch": m.row.best_epoch,
        "config": asdict(m.config),
    }


def export(
    storage: str,
    study: str,
    out: Path,
    *,
    trial: int | None = None,
    ensemble: int | None = None,
    members: Sequence[int] | None = None,
    refit: bool = False,
    formats: Sequence[str] = FORMATS,
    data: str | None = None,
    threshold: float | None = None,
    target: OperatingTarget | None = None,
    force: bool = False,
) -> ExportResult:
    """Package a study's best model: by default the greedy ensemble of its top trials, or one
    trial (``trial``, or ``ensemble=1``), optionally refitted on train+validation.

    The COVID threshold is chosen on validation for the study's operating target (or
    ``target``, or given as ``threshold``); the test split is read once, here.
    """
    formats = _check_formats(formats)
    _check_out(out, force)
    _check_choice_args(trial, ensemble, members)
    if threshold is not None and not 0 < threshold < 1:
        raise SearchError(f"`0 < threshold < 1` must hold, but got threshold={threshold}.")
    sd = study_data(storage, study, data)
    choice = _choose(sd, study, trial, ensemble, members)
    lead = choice.members[0]
    split = sd.split(lead.row)
    classes = list(split.scheme.class_names)
    target = target or row_target(lead.row, sd.info)
    validation, threshold_used = _validation(choice, classes, target, threshold)
    models = _load_members(choice, sd, refit)
    size = max(m.config.image_size for m in choice.members)
    single = len(models) == 1
    model = models[0] if single else build_ensemble(models, [m.weight for m in choice.members], size)
    member_cards = [_member_card(m, mm) for m, mm in zip(choice.members, models, strict=True)]

    arrays = sd.arrays(size, lead.config.crop)
    test = usable_test_indices(split, arrays, study)
    proba = predict(model, arrays, test, split.labels, lead.config.batch_size)
    tested = compute_metrics(split.labels[test], proba, classes, split="test", target=target, threshold=threshold_used)
    if single and not refit:  # the trial's own model: its test row sits beside its validation row
        _store_test_row(sd.store, lead.row, tested)

    out.mkdir(parents=True, exist_ok=True)
    files = _write(model, out, formats)
    images = np.asarray(arrays.images[test[:SAMPLE_IMAGES]], dtype=np.float32)
    parity = verify(out, model.predict(images, verbose=0), images, files)
    focus = [(m.row.lung_focus, m.weight) for m in choice.members]
    card = {
        "study": study,
        "kind": "single" if single else "ensemble",
        "refit": refit,
        "trial": lead.row.trial_number if single else None,
        "engine": lead.row.engine,
        "members": member_cards,
        "selection": None
        if choice.selection is None
        else {
            "method": "greedy ensemble selection with replacement on validation log loss (Caruana et al. 2004)",
            "rounds": len(choice.selection.losses),
            "pool": choice.pool,
            "validation_log_loss": list(choice.selection.losses),
        },
        "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "classes": classes,
        "scheme": lead.config.scheme,
        "covid_class_index": COVID_LABEL,
        "input": {
            "size": size,
            "channels": "RGB",
            "dtype": "float32",
            "range": [0, 255],
            "crop_fraction_per_side": lead.config.crop,
        },
        "decision": _decision(threshold_used, target, given=threshold is not None),
        "gradcam_layer": member_cards[0]["gradcam_layer"] if single else None,
        "gradcam": {"members": [[c["gradcam_layer"], c["weight"]] for c in member_cards]},
        "config": asdict(lead.config) if single else None,
        "validation": validation,
        "test": tested_summary(tested),
        "lung_focus": None if any(f is None for f, _ in focus) else sum(f * w for f, w in focus if f is not None),
        "dataset": {
            "path": sd.info.data_path,
            "fingerprint": sd.info.dataset_fingerprint,
            "split_fingerprint": lead.row.split_fingerprint,
            "split_counts": split.counts(),
        },
        "versions": _versions(),
        "intended_use": INTENDED_USE,
        "warning": WARNING,
        "caveats": _caveats(split, sd.manifest, choice, validation),
        "files": files,
        "parity": parity,
    }
    (out / "model_card.json").write_text(json.dumps(card, indent=2, default=str))
    (out / "MODEL_CARD.md").write_text(_markdown(card))
    return ExportResult(out, card)


def tested_summary(metrics: TrialMetrics) -> dict[str, Any]:
    return _summary(metrics)


def _store_test_row(store: ResultStore, row: TrialRow, metrics: TrialMetrics) -> None:
    from search._recording import metrics_to_row

    test_row = TrialRow(
        **{c.key: getattr(row, c.key) for c in TrialRow.__table__.columns if c.key not in ("id", "created_at")}
    )
    test_row.split = "test"
    metrics_to_row(test_row, metrics)
    test_row.loss = None
    store.record(test_row)


def _ids(text: str) -> list[int]:
    try:
        return [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"`--members` must be comma-separated trial numbers, but got {text!r}"
        ) from None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m search.export", description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--study", required=True)
    parser.add_argument("--out", required=True, type=Path, help="a new or empty folder")
    choice = parser.add_argument_group("what to export (default: the ensemble of the top 5 trials)")
    choice.add_argument("--trial", type=int, help="one trial, by number")
    choice.add_argument(
        "--ensemble", type=int, help="select the ensemble from the top K trials (1: the top trial alone)"
    )
    choice.add_argument("--members", type=_ids, help="select the ensemble from these trials, e.g. 3,8,12")
    parser.add_argument("--refit", action="store_true", help="train each member again on train+validation first")
    parser.add_argument("--storage", default="sqlite:///optuna.db")
    parser.add_argument("--formats", default=",".join(FORMATS), help=f"comma-separated: {', '.join(FORMATS)}")
    target = parser.add_mutually_exclusive_group()
    target.add_argument("--threshold", type=float, help="COVID decision threshold on its probability")
    target.add_argument("--target-specificity", type=float, help="choose the threshold on validation for this")
    target.add_argument("--target-sensitivity", type=float, help="... or for this (default: the study's target)")
    parser.add_argument("--data", help="dataset path on this machine (default: the study's)")
    parser.add_argument("--force", action="store_true", help="write into a folder that already holds files")
    args = parser.parse_args(argv)
    try:
        wanted = None
        if args.target_specificity is not None:
            wanted = OperatingTarget("specificity", args.target_specificity)
        elif args.target_sensitivity is not None:
            wanted = OperatingTarget("sensitivity", args.target_sensitivity)
        result = export(
            args.storage, args.study, args.out, trial=args.trial, ensemble=args.ensemble, members=args.members,
            refit=args.refit, formats=[f.strip() for f in args.formats.split(",")], data=args.data,
            threshold=args.threshold, target=wanted, force=args.force,
        )  # fmt: skip
    except (SearchError, DatasetError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except ValueError as exc:  # a target outside (0, 1)
        print(f"error: {exc}", file=sys.stderr)
        return 1
    card = result.card
    members = ", ".join(f"trial {m['trial']} ({m['backbone']}, weight {m['weight']:.2f})" for m in card["members"])
    print(f"Exported {card['kind']}{' (refit)' if card['refit'] else ''}: {members} to {result.folder}")
    print(f"Decision: {card['decision']['rule']}")
    op = card["test"]["at_threshold"]
    if op is not None:
        print(
            f"Test split ({card['test']['n']} images, measured once): COVID sensitivity {_with_ci(op['sensitivity'], op['sensitivity_ci'])}, "
            f"specificity {_with_ci(op['specificity'], op['specificity_ci'])}, COVID AUC {_f(card['test']['covid_auc'])}"
        )
    print(f"Checked after reloading: {card['parity']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Synthetic studies with known results, for tests, demos and the leaderboard benchmark.

Rows go through the real stores (Optuna's storage and :class:`search.store.ResultStore`), so
the leaderboard reads exactly what a search would have written; no model is trained.
"""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import optuna
from sqlalchemy.orm import Session

from search.metrics import wilson_interval
from search.store import (
    ArtifactRow,
    EpochRow,
    Predictions,
    ResultStore,
    TrialRow,
    count_mistakes,
    decide,
    pick_mistakes,
)

__all__ = ["OVERLAY_IMAGES", "make_synthetic_study"]

_BACKBONES = ("DenseNet121", "MobileNetV2", "ResNet50V2", "EfficientNetB0")
_REGIONS = ("full", "lung_crop", "lung_mask")  # the input regions synthetic trials are spread over

_DISTRIBUTIONS = {
    "backbone": optuna.distributions.CategoricalDistribution(list(_BACKBONES)),
    "freeze_depth": optuna.distributions.FloatDistribution(0.0, 1.0, step=0.25),
    "head_width": optuna.distributions.IntDistribution(16, 512, log=True),
    "dropout": optuna.distributions.FloatDistribution(0.0, 0.5),
    "learning_rate": optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True),
    "augment_strength": optuna.distributions.FloatDistribution(0.0, 1.0),
    "scheme": optuna.distributions.CategoricalDistribution(["three", "binary"]),
}


def _params(rng: np.random.Generator) -> dict[str, object]:
    return {
        "backbone": str(rng.choice(_BACKBONES)),
        "freeze_depth": float(rng.choice([0.0, 0.25, 0.5, 0.75, 1.0])),
        "head_width": int(rng.integers(16, 513)),
        "dropout": float(rng.uniform(0, 0.5)),
        "learning_rate": float(10 ** rng.uniform(-4, -2)),
        "augment_strength": float(rng.uniform(0, 1)),
        "scheme": str(rng.choice(["three", "binary"])),
    }


_COVID, _OTHERS = 120, 240  # validation images per side, as in the shared sample
_CLASSES = ("COVID", "Normal", "Viral Pneumonia")
# The validation images whose Grad-CAM overlays a trial stores, per scheme, as a search picks
# them (the same images for every trial of a scheme and split); the two schemes share two.
OVERLAY_IMAGES = {
    "three": ("COVID-101", "Normal-212", "Viral Pneumonia-33", "COVID-140"),
    "binary": ("COVID-101", "Normal-212", "Normal-87", "COVID-77"),
}
_VARIANTS = 3  # distinct pictures per image (trials share them: a 10,000-trial study stays small on disk)
_MISTAKE_PICTURES = 8


def _interval(value: float, n: int, prefix: str) -> dict[str, float]:
    low, high = wilson_interval(round(value * n), n) or (0.0, 1.0)
    return {f"{prefix}_low": low, f"{prefix}_high": high}


def _metrics(rng: np.random.Generator, sens: float, focus: float | None, loss: float) -> dict[str, object]:
    """A completed trial's figures; ``sens`` is its COVID sensitivity at the 0.95-specificity threshold."""
    op_sens = round(sens * _COVID) / _COVID
    op_spec = round(float(rng.uniform(0.95, 0.96)) * _OTHERS) / _OTHERS
    argmax_sens = round(min(1.0, sens + float(rng.uniform(-0.03, 0.03))) * _COVID) / _COVID
    argmax_spec = round(float(rng.uniform(0.8, 0.99)) * _OTHERS) / _OTHERS
    figures: dict[str, object] = {
        "loss": loss,
        "accuracy": float(rng.uniform(0.7, 0.95)),
        "balanced_accuracy": float(rng.uniform(0.7, 0.95)),
        "op_target": "specificity 0.95",
        "covid_threshold": float(rng.uniform(0.05, 0.6)),
        "op_sensitivity": op_sens,
        **_interval(op_sens, _COVID, "op_sensitivity"),
        "op_specificity": op_spec,
        **_interval(op_spec, _OTHERS, "op_specificity"),
        "covid_sensitivity": argmax_sens,
        **_interval(argmax_sens, _COVID, "covid_sensitivity"),
        "covid_specificity": argmax_spec,
        **_interval(argmax_spec, _OTHERS, "covid_specificity"),
        "covid_ppv": float(rng.uniform(0.7, 0.99)),
        "covid_npv": float(rng.uniform(0.8, 0.99)),
        "covid_auc": float(rng.uniform(0.85, 0.99)),
        "roc_auc": float(rng.uniform(0.85, 0.99)),
        "lung_focus": focus,
        "class_names_json": json.dumps(["COVID", "Normal", "Viral Pneumonia"]),
        "confusion_json": json.dumps([[50, 3, 2], [4, 48, 3], [1, 2, 52]]),
    }
    auc = figures["covid_auc"]
    assert isinstance(auc, float)
    figures["covid_roc_json"] = json.dumps(_roc(auc))
    return figures


def _roc(auc: float) -> list[list[float]]:
    """A ROC curve whose area is ``auc`` (tpr = fpr ** a has area 1 / (1 + a))."""
    fpr = np.linspace(0.0, 1.0, 21) ** 2
    return [fpr.round(4).tolist(), (fpr ** (1.0 / auc - 1.0)).round(4).tolist()]


def _png(seed: int, size: int = 96) -> bytes:
    """A chest-X-ray-like grey picture with a red "heatmap" blob somewhere: a stand-in overlay."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    lungs = np.exp(-(((x - 0.3) / 0.15) ** 2 + ((y - 0.5) / 0.3) ** 2)) + np.exp(
        -(((x - 0.7) / 0.15) ** 2 + ((y - 0.5) / 0.3) ** 2)
    )
    cx, cy = rng.uniform(0.2, 0.8, size=2)
    heat = np.exp(-(((x - cx) / 0.12) ** 2 + ((y - cy) / 0.12) ** 2))
    grey = 60 + 120 * lungs.clip(0, 1)
    rgb = np.stack([grey + 120 * heat, grey * (1 - 0.5 * heat), grey * (1 - 0.5 * heat)], axis=-1)
    out = io.BytesIO()
    Image.fromarray(rgb.clip(0, 255).astype(np.uint8)).save(out, format="PNG")
    return out.getvalue()


def _write_pictures(folder: Path) -> None:
    """The overlay pictures every trial's artifact rows point at (bare names inside ``folder``)."""
    folder.mkdir(parents=True, exist_ok=True)
    images = sorted({image for names in OVERLAY_IMAGES.values() for image in names})
    for k, image in enumerate(images):
        for variant in range(_VARIANTS):
            (folder / _overlay_id(image, variant)).write_bytes(_png(100 * k + variant))
    for k in range(_MISTAKE_PICTURES):
        (folder / f"synthetic-mistake-{k}").write_bytes(_png(10_000 + k))


def _overlay_id(image: str, variant: int) -> str:
    return f"synthetic-{image.replace(' ', '_')}-{variant}"


def _overlays(number: int, scheme: str) -> list[ArtifactRow]:
    return [
        ArtifactRow(kind="gradcam", artifact_id=_overlay_id(image, (number + k) % _VARIANTS),
                    filename=f"gradcam-{image}.png", bytes=1000)
        for k, image in enumerate(OVERLAY_IMAGES[scheme])
    ]  # fmt: skip


def _validation(rng: np.random.Generator, sens: float, threshold: float) -> Predictions:
    """Validation probabilities (COVID, Normal, Viral Pneumonia) that, at ``threshold``, miss about
    ``1 - sens`` of the COVID images, call about 5% of the others COVID and confuse a few others."""
    labels = np.repeat([0, 1, 2], [_COVID, _OTHERS // 2, _OTHERS - _OTHERS // 2])
    n = len(labels)
    favoured = np.where((labels != 0) & (rng.random(n) < 0.03), 3 - labels, labels)  # a few others confused
    rest = rng.dirichlet([1.0, 1.0, 1.0], size=n)
    rest[np.arange(n), favoured] += 3.0
    rest[:, 0] = 0.0
    above = np.where(labels == 0, rng.random(n) < sens, rng.random(n) < 0.05)
    covid = np.where(above, rng.uniform(threshold, 1.0, n), rng.uniform(0.0, threshold, n) * 0.999)
    proba = rest / rest.sum(axis=1, keepdims=True) * (1.0 - covid)[:, None]
    proba[:, 0] = covid
    return Predictions("val", np.arange(n), labels, proba.astype(np.float32).astype(np.float64))


def _mistakes(predictions: Predictions, threshold: float) -> tuple[str, list[ArtifactRow]]:
    """The trial's ``mistakes_json`` and its ``"mistake"`` artifact rows, picked as a search picks them."""
    picks = pick_mistakes(predictions.labels, predictions.proba, threshold)
    items, rows = [], []
    for k, (position, kind) in enumerate(picks):
        label = _CLASSES[int(predictions.labels[position])]
        proba = predictions.proba[position]
        predicted = _CLASSES[int(decide(proba[None, :], threshold)[0])]
        artifact_id = f"synthetic-mistake-{(position + k) % _MISTAKE_PICTURES}"
        items.append(
            {
                "entry": int(predictions.indices[position]), "path": f"{label}/images/{label}-{position}.png",
                "label": label, "predicted": predicted, "covid_probability": float(proba[0]),
                "probabilities": {name: float(p) for name, p in zip(_CLASSES, proba, strict=True)},
                "artifact_id": artifact_id, "kind": kind,
            }
        )  # fmt: skip
        rows.append(ArtifactRow(kind="mistake", artifact_id=artifact_id, filename=f"mistake-{k}-{label}-{position}.png",
                                bytes=1000))  # fmt: skip
    return json.dumps(items), rows


def make_synthetic_study(
    url: str,
    study_name: str,
    n_trials: int,
    *,
    seed: int = 0,
    best: int | None = None,
    with_lung_focus: bool = True,
    batch: int = 2000,
    artifacts: Path | None = None,
) -> int:
    """Write ``n_trials`` trials (about 70% complete, 25% pruned, 5% failed) and return the
    number of the trial that ranks first. ``best`` forces that trial to be the winner.

    ``artifacts`` (a folder): also what a search stores for the trial page and the comparison,
    as a search stores them: per completed trial four Grad-CAM overlays of the same validation
    images for every trial of a scheme (:data:`OVERLAY_IMAGES`), its validation probabilities, and
    up to eight misclassified validation images with their overlays (``mistakes_json``).
    """
    rng = np.random.default_rng(seed)
    regions = np.random.default_rng(seed + 1).choice(_REGIONS, n_trials)  # apart: the other draws stay as they were
    store = ResultStore(url)
    store.create_schema()
    storage = optuna.storages.RDBStorage(url)
    study = optuna.create_study(storage=storage, study_name=study_name, direction="minimize", load_if_exists=True)
    study.set_user_attr("cxr_artifacts", "" if artifacts is None else str(Path(artifacts).resolve()))
    if artifacts is not None:
        _write_pictures(Path(artifacts))
    start = datetime.now(UTC) - timedelta(hours=n_trials / 100)
    frozen, rows = [], []
    for number in range(n_trials):
        params = _params(rng)
        draw = rng.random()
        state = "COMPLETE" if draw < 0.7 else "PRUNED" if draw < 0.95 else "FAIL"
        sens = float(rng.uniform(0.6, 0.95))
        focus = float(rng.uniform(0.2, 0.9)) if with_lung_focus else None
        if number == best:
            state, sens, focus = "COMPLETE", 0.99, 0.95 if with_lung_focus else None
        loss = float(rng.uniform(0.15, 0.9))
        epochs = int(rng.integers(2, 8))
        values = [loss * (1.5 - 0.5 * e / epochs) for e in range(epochs)]
        began = start + timedelta(seconds=30 * number)
        frozen.append(
            optuna.trial.create_trial(
                params=params,
                distributions=_DISTRIBUTIONS,
                value=min(values) if state == "COMPLETE" else None,
                intermediate_values=dict(enumerate(values)) if state != "FAIL" else {},
                state={
                    "COMPLETE": optuna.trial.TrialState.COMPLETE,
                    "PRUNED": optuna.trial.TrialState.PRUNED,
                    "FAIL": optuna.trial.TrialState.FAIL,
                }[state],
            )
        )
        frozen[-1].datetime_start, frozen[-1].datetime_complete = began, began + timedelta(seconds=25)
        complete = state == "COMPLETE"
        measured = _metrics(rng, sens, focus, min(values)) if complete else {}
        row = TrialRow(
            study_name=study_name, engine="optuna", trial_number=number, state=state, split="val",
            backbone=params["backbone"], scheme=params["scheme"], freeze_depth=params["freeze_depth"],
            head_width=params["head_width"], dropout=params["dropout"], learning_rate=params["learning_rate"],
            augment_strength=params["augment_strength"], image_size=128, batch_size=32, max_epochs=8,
            input_region=str(regions[number]), weights="imagenet",
            config_json=json.dumps({**params, "image_size": 128, "input_region": str(regions[number])}),
            epochs_run=epochs if state != "FAIL" else 0, pruned_at_epoch=epochs - 1 if state == "PRUNED" else None,
            wall_time_s=float(rng.uniform(10, 300)), params=int(rng.integers(200_000, 25_000_000)),
            error="out of memory" if state == "FAIL" else None, created_at=began, **measured,
        )  # fmt: skip
        row.epochs = [
            EpochRow(
                epoch=e,
                phase="train",
                loss=v * 0.9,
                val_loss=v,
                accuracy=None,
                val_accuracy=None,
                learning_rate=1e-3,
                seconds=3.0,
            )
            for e, v in enumerate(values if state != "FAIL" else [])
        ]
        if artifacts is not None and complete:
            threshold = row.covid_threshold if row.covid_threshold is not None else 0.5
            predictions = _validation(rng, sens, threshold)
            row.mistakes_json, mistakes = _mistakes(predictions, threshold)
            counts = count_mistakes(predictions.labels, predictions.proba, threshold)
            row.confusion_json = json.dumps(counts.confusion)  # the confusion of these probabilities
            row.artifacts = _overlays(number, str(params["scheme"])) + mistakes
            row.predictions = [predictions.to_row()]
        rows.append(row)
        if len(rows) >= batch:
            _flush(store, study, rows, frozen)
    _flush(store, study, rows, frozen)
    ranked = store.ranked(study_name, limit=1)
    return ranked[0].trial_number


def _flush(
    store: ResultStore, study: optuna.Study, rows: list[TrialRow], frozen: list[optuna.trial.FrozenTrial]
) -> None:
    study.add_trials(frozen)
    with Session(store.engine) as session, session.begin():
        session.add_all(rows)
    rows.clear()
    frozen.clear()

"""Run one trial from its ``TrialConfig``: data, model, fit, validation metrics. No Optuna here."""

from __future__ import annotations

import gc
import hashlib
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import keras
import numpy as np

from cxrdata import (
    REGION_MARGIN,
    DatasetError,
    ImageArrays,
    Manifest,
    Split,
    atomic_write,
    cached_region,
    get_scheme,
    load_images,
    make_split,
    one_at_a_time,
    to_original,
)
from search._accel import apply_precision
from search._feed import TrialFeed
from search._hidden import hidden_lungs_auc, hidden_lungs_entries, hidden_lungs_proba
from search.backbones import resolve_weights
from search.features import FeatureCache
from search.gradcam import LungFocus, gradcam, lung_focus, overlay
from search.metrics import COVID_LABEL, TrialMetrics, compute_metrics
from search.model import BuiltModel, build_model
from search.space import TrialConfig
from search.store import MISTAKES, Predictions, decide, pick_mistakes
from search.train import FitResult, Reporter, fit_model

__all__ = [
    "FOCUS_IMAGES",
    "MISTAKES",
    "OVERLAYS",
    "MistakeImage",
    "TrialData",
    "TrialOutcome",
    "count_params",
    "covid_heatmaps",
    "focus_entries",
    "focus_of",
    "measure_focus",
    "measure_mistakes",
    "refit_trial",
    "run_trial",
    "trial_feed",
]


@dataclass
class TrialData:
    """A worker's view of the dataset: the manifest, plus arrays and splits made once per worker.

    Decoded images are cached on disk per image size (shared by all workers) and kept in
    memory per process, so no trial decodes an image another trial already decoded.
    """

    manifest: Manifest
    cache_dir: Path | None = None
    split_seed: int = 0
    lung_model: Path | None = None  # a segmenter for entries without a dataset mask
    use_features: bool = True  # train on cached activations of the frozen part where possible
    _arrays: dict[tuple[int, float], ImageArrays] = field(default_factory=dict)
    _splits: dict[str, Split] = field(default_factory=dict)
    _lungs: dict[tuple[int, float], tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=dict)
    _inputs: dict[tuple[int, float, str], tuple[ImageArrays, np.ndarray]] = field(default_factory=dict)
    _input_lungs: dict[tuple[int, float, str], np.ndarray] = field(default_factory=dict)
    _features: FeatureCache | None = None

    @property
    def feature_cache(self) -> FeatureCache | None:
        if self.cache_dir is None:
            return None
        if self._features is None:
            self._features = FeatureCache(self.cache_dir / "features")
        return self._features

    def arrays(self, image_size: int, crop: float) -> ImageArrays:
        key = (image_size, crop)
        if key not in self._arrays:
            self._arrays[key] = load_images(self.manifest, image_size, crop=crop, cache_dir=self.cache_dir)
        return self._arrays[key]

    def inputs(self, config: TrialConfig) -> ImageArrays:
        """What the trial's model sees: its images with its input region applied."""
        return self._region(config)[0]

    def boxes(self, config: TrialConfig) -> np.ndarray:
        """Per entry, the box ``(y0, y1, x0, x1)`` of the original image the model's input shows."""
        return self._region(config)[1]

    def inputs_key(self, config: TrialConfig) -> str:
        """What the inputs depend on beyond the image size: the dataset, and a region's masks."""
        if config.input_region == "full":
            return self.manifest.fingerprint
        digest = self._segmenter_digest() if self.lung_model is not None else "dataset"
        return f"{self.manifest.fingerprint}:{config.input_region}:{digest}"

    def _region(self, config: TrialConfig) -> tuple[ImageArrays, np.ndarray]:
        key = (config.image_size, config.crop, config.input_region)
        if key not in self._inputs:
            arrays = self.arrays(config.image_size, config.crop)
            region = config.input_region
            if region == "full":
                n, size = len(arrays.images), arrays.image_size
                self._inputs[key] = arrays, np.tile(np.array([0, size, 0, size]), (n, 1))
            else:
                masks, available, _ = self.lung_masks(config.image_size, config.crop)
                if not available[arrays.valid].any():
                    raise DatasetError(
                        f"`input_region={region}` needs lung masks, but the dataset has none and no lung "
                        "segmenter was given (--lung-model)."
                    )
                cut = cached_region(arrays.images, masks, available, region, self._region_folder(config))
                self._inputs[key] = replace(arrays, images=cut.images, masks=cut.masks), cut.boxes
        return self._inputs[key]

    def input_lungs(self, config: TrialConfig) -> np.ndarray:
        """``(N, S, S, 1)`` uint8 in {0, 1}: the lungs as the trial's model sees them (its region
        applied), all ones where no mask is known, so the focus penalty asks nothing of that image.
        Made once per worker and region, like the inputs: every focus-trained trial reads it."""
        key = (config.image_size, config.crop, config.input_region)
        if key not in self._input_lungs:
            masks, available, _ = self.lung_masks(config.image_size, config.crop)
            if config.input_region != "full":
                masks = self.inputs(config).masks  # cut and resized with the images
            size = config.image_size
            lungs = (np.asarray(masks).reshape(len(available), size, size, 1) > 0).astype(np.uint8)
            unknown = ~np.asarray(available, dtype=bool) | ~lungs.reshape(len(lungs), -1).any(axis=1)
            lungs[unknown] = 1
            self._input_lungs[key] = lungs
        return self._input_lungs[key]

    def _region_folder(self, config: TrialConfig) -> Path | None:
        """Where a region's inputs are cached, beside the image cache (None: kept in memory)."""
        if self.cache_dir is None:
            return None
        text = f"{self.inputs_key(config)}|{config.image_size}|{config.crop:.4f}|{REGION_MARGIN}"
        return self.cache_dir / f"region-{hashlib.sha256(text.encode()).hexdigest()[:20]}"

    def _segmenter_digest(self) -> str:
        assert self.lung_model is not None
        return hashlib.sha256(self.lung_model.read_bytes()).hexdigest()[:12]

    def lung_masks(self, image_size: int, crop: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(masks (N, S, S) bool, available (N,) bool, from_dataset (N,) bool)`` for every entry.

        Dataset masks come first; with a segmenter the other entries are segmented once and
        the result cached on disk beside the image cache.
        """
        key = (image_size, crop)
        if key not in self._lungs:
            arrays = self.arrays(image_size, crop)
            masks = np.asarray(arrays.masks[..., 0]) > 0
            from_dataset = np.asarray(arrays.has_mask).copy()
            available = from_dataset.copy()
            if self.lung_model is not None and not from_dataset.all():
                masks = masks.copy()
                todo = np.flatnonzero(~from_dataset & arrays.valid)
                masks[todo] = self._segmented(arrays, image_size, crop)[todo]
                available[todo] = True
            self._lungs[key] = (masks, available, from_dataset)
        return self._lungs[key]

    def _segmented(self, arrays: ImageArrays, image_size: int, crop: float) -> np.ndarray:
        if self.cache_dir is None:
            return self._segment(arrays)
        digest = self._segmenter_digest()
        cache = self.cache_dir / f"lungs-{self.manifest.fingerprint}-{image_size}-{crop:.4f}-{digest}.npy"
        if not cache.is_file():
            with one_at_a_time(cache):  # workers starting together segment once
                if not cache.is_file():
                    masks = self._segment(arrays)
                    with atomic_write(cache) as staging:  # concurrent workers never read half a file
                        np.save(staging, masks)
                    return masks
        return np.asarray(np.load(cache), dtype=bool)

    def _segment(self, arrays: ImageArrays) -> np.ndarray:
        from cxrdata.lungs import load_segmenter, segment

        assert self.lung_model is not None
        model = load_segmenter(self.lung_model)  # the file launch checked, checked again: it may have changed
        return segment(model, np.asarray(arrays.images))

    def split(self, scheme: str) -> Split:
        if scheme not in self._splits:
            self._splits[scheme] = make_split(self.manifest, get_scheme(scheme), seed=self.split_seed)
        return self._splits[scheme]


@dataclass
class TrialOutcome:
    """What a trial produced. ``built`` is kept only when the caller asked for the model."""

    config: TrialConfig
    fit: FitResult
    metrics: TrialMetrics | None
    wall_time_s: float
    params: int
    trainable_params: int
    built: BuiltModel | None = None
    split_fingerprint: str = ""
    focus: LungFocus | None = None
    focus_source: str | None = None  # "dataset", "segmenter" or "mixed"
    hidden_lungs_auc: float | None = None  # COVID AUC on validation images with the lungs hidden (search._hidden)
    overlays: list[tuple[str, np.ndarray]] = field(default_factory=list)  # (file name, RGB uint8)
    routes: list[str] = field(default_factory=list)  # per phase: "images" or "features:<floats per image>"
    predictions: Predictions | None = None  # validation probabilities (ensembles, operating points)
    # Cross-validation: each fold's model saved to a file (when the caller asked for the model),
    # and per figure the mean, spread and values over folds.
    fold_models: list[Path] = field(default_factory=list)
    fold_spread: dict[str, dict[str, Any]] | None = None
    _fold_dir: Any = None  # the temporary folder holding fold_models, removed with the outcome
    # Up to MISTAKES misclassified validation images at the trial's threshold (measure_mistakes).
    mistakes: list[MistakeImage] = field(default_factory=list)


FOCUS_IMAGES = 96  # validation images with lung masks that Grad-CAM reads per trial
OVERLAYS = 4
# (file name, its mistakes_json item without artifact_id, RGB uint8 overlay in the original image's coordinates)
MistakeImage = tuple[str, dict[str, Any], np.ndarray]


FocusResult = tuple[LungFocus | None, str | None, list[tuple[str, np.ndarray]]]


def focus_entries(data: TrialData, config: TrialConfig, split: Split) -> np.ndarray:
    """The validation entries Grad-CAM reads: up to ``FOCUS_IMAGES`` with lung masks, evenly
    spaced over the (sorted) validation indices, so every class, reproducibly. Never the test split."""
    _, available, _ = data.lung_masks(config.image_size, config.crop)
    arrays = data.arrays(config.image_size, config.crop)
    val = split.indices["val"]
    val = val[available[val] & arrays.valid[val]]
    if len(val) == 0:
        return np.zeros(0, dtype=np.int64)
    return np.unique(val[np.linspace(0, len(val) - 1, min(FOCUS_IMAGES, len(val))).round().astype(int)])


def focus_of(data: TrialData, config: TrialConfig, chosen: np.ndarray, heatmaps: np.ndarray) -> FocusResult:
    """Lung focus, mask source and a few overlays from the COVID heatmaps of ``chosen`` entries."""
    if len(chosen) == 0:
        return None, None, []
    masks, _, from_dataset = data.lung_masks(config.image_size, config.crop)
    images = np.asarray(data.arrays(config.image_size, config.crop).images[chosen[:OVERLAYS]])
    # Measured in the original image's coordinates, whatever the region: comparable across regions.
    heatmaps = to_original(heatmaps, data.boxes(config)[chosen], masks.shape[1:3])
    focus = lung_focus(heatmaps, masks[chosen])
    sources = set(np.where(from_dataset[chosen], "dataset", "segmenter").tolist())
    source = sources.pop() if len(sources) == 1 else "mixed"
    overlays = [
        (f"gradcam-{Path(data.manifest.entries[int(i)].path).stem}.png", overlay(images[k], heatmaps[k]))
        for k, i in enumerate(chosen[:OVERLAYS])
    ]
    return focus, source, overlays


def covid_heatmaps(built: BuiltModel, data: TrialData, config: TrialConfig, chosen: np.ndarray) -> np.ndarray:
    images = np.asarray(data.inputs(config).images[chosen], dtype=np.float32)
    return gradcam(built.model, built.gradcam_layer, images, COVID_LABEL)


def measure_focus(built: BuiltModel, data: TrialData, config: TrialConfig, split: Split) -> FocusResult:
    """Lung focus of the COVID score on validation images that have lung masks (never the test split)."""
    chosen = focus_entries(data, config, split)
    if len(chosen) == 0:
        return None, None, []
    return focus_of(data, config, chosen, covid_heatmaps(built, data, config, chosen))


def measure_mistakes(
    data: TrialData,
    config: TrialConfig,
    split: Split,
    metrics: TrialMetrics,
    predictions: Predictions,
    heatmaps_of: Callable[[np.ndarray], np.ndarray],
    available: np.ndarray | None = None,
) -> list[MistakeImage]:
    """Up to ``MISTAKES`` misclassified images of ``predictions`` at the trial's own COVID threshold
    (:func:`search.store.pick_mistakes`: missed COVID first, then false COVID, then other
    confusions), each with the COVID Grad-CAM overlay on the original image.

    ``heatmaps_of(entries)`` gives the COVID heatmaps of those manifest entries on the model's
    input (its region); they are put back into the original image as lung focus does. Only the
    picked images are read: ``MISTAKES`` Grad-CAM images per trial (a twelfth of lung focus's 96).
    ``available``: the only entries that may be picked (a cross-validated trial's, whose fold
    models kept the heatmaps of :func:`search.store.mistake_candidates` only).
    """
    if available is not None:
        keep = np.isin(predictions.indices, available)
        predictions = replace(
            predictions,
            indices=predictions.indices[keep],
            labels=predictions.labels[keep],
            proba=predictions.proba[keep],
        )
    threshold = metrics.operating.threshold if metrics.operating is not None else None
    picks = pick_mistakes(predictions.labels, predictions.proba, threshold, MISTAKES)
    if not picks:
        return []
    positions = np.array([p for p, _ in picks])
    entries = predictions.indices[positions]
    proba = predictions.proba[positions]
    predicted = decide(proba, threshold)
    images = np.asarray(data.arrays(config.image_size, config.crop).images)
    heatmaps = to_original(heatmaps_of(entries), data.boxes(config)[entries], images.shape[1:3])
    names = split.scheme.class_names
    out: list[MistakeImage] = []
    for k, ((position, kind), entry) in enumerate(zip(picks, entries, strict=True)):
        path = data.manifest.entries[int(entry)].path
        item = {
            "entry": int(entry),
            "path": path,
            "label": names[int(predictions.labels[position])],
            "predicted": names[int(predicted[k])],
            "covid_probability": float(proba[k, COVID_LABEL]),
            "probabilities": {name: float(p) for name, p in zip(names, proba[k], strict=True)},
            "kind": kind,
        }
        stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(path).stem)[:60]
        out.append((f"mistake-{k}-{stem}.png", item, overlay(images[int(entry)], heatmaps[k])))
    return out


def trial_feed(built: BuiltModel, config: TrialConfig, data: TrialData, split: Split) -> TrialFeed:
    """What each phase of ``fit_model`` trains on, for this model on this split."""
    return TrialFeed(
        built=built,
        config=config,
        split=split,
        arrays=data.inputs(config),
        dataset=data.inputs_key(config),
        weights=resolve_weights(built.spec, config.weights, config.image_size),
        cache=data.feature_cache,
        use_features=data.use_features,
        lungs=data.input_lungs(config) if config.focus_weight > 0 else None,
    )


def count_params(weights: list[keras.Variable]) -> int:
    return int(sum(np.prod(w.shape) for w in weights))


def run_trial(
    config: TrialConfig,
    data: TrialData,
    *,
    report: Reporter | None = None,
    keep_model: bool = False,
) -> TrialOutcome:
    """Train one model and measure it on the validation split (never the test split).

    The Keras session is cleared before and after, and garbage collected, so trials in one
    process do not pile up graphs. With ``config.folds > 1`` the trial is cross-validated
    inside train+validation instead (:func:`search._folds.run_folds`).
    """
    if config.folds > 1:
        from search._folds import run_folds

        return run_folds(config, data, report=report, keep_model=keep_model)
    started = time.perf_counter()
    keras.backend.clear_session()
    apply_precision()  # clear_session forgets the worker's choice
    # Keras seeds Python's and NumPy's global generators too; put them back afterwards so the
    # caller's own randomness (Optuna's samplers among it) does not repeat trial after trial.
    global_state = random.getstate(), np.random.get_state()
    keras.utils.set_random_seed(config.seed)
    split = data.split(config.scheme)
    built = build_model(config, split.scheme.num_classes)
    feed = trial_feed(built, config, data, split)
    try:
        fit = fit_model(built, config, feed, report=report)
        metrics, focus, source, predictions, hidden_auc = None, None, None, None, None
        overlays: list[tuple[str, np.ndarray]] = []
        mistakes: list[MistakeImage] = []
        if not fit.pruned:
            assert feed.last is not None
            model, val = feed.last  # the last phase's model and data: no second pass of the frozen part
            proba = model.predict(val, verbose=0)
            labels = split.labels[feed.val_indices]
            metrics = compute_metrics(
                labels, proba, split.scheme.class_names, split="val", loss=fit.best_val_loss, target=config.target
            )
            predictions = Predictions("val", feed.val_indices, labels, proba)
            focus, source, overlays = measure_focus(built, data, config, split)
            hidden = hidden_lungs_entries(data, config, feed.val_indices)
            hidden_auc = hidden_lungs_auc(split.labels[hidden], hidden_lungs_proba(built.model, data, config, hidden))
            mistakes = measure_mistakes(
                data, config, split, metrics, predictions, lambda e: covid_heatmaps(built, data, config, e)
            )
        return TrialOutcome(
            config=config,
            fit=fit,
            metrics=metrics,
            wall_time_s=time.perf_counter() - started,
            params=built.model.count_params(),
            trainable_params=count_params(built.model.trainable_weights),
            built=built if keep_model else None,
            split_fingerprint=split.fingerprint,
            focus=focus,
            focus_source=source,
            hidden_lungs_auc=hidden_auc,
            overlays=overlays,
            routes=feed.routes,
            predictions=predictions,
            mistakes=mistakes,
        )
    finally:
        random.setstate(global_state[0])
        np.random.set_state(global_state[1])
        if not keep_model:
            del built
            keras.backend.clear_session()
            gc.collect()


def refit_trial(config: TrialConfig, data: TrialData, epochs: int) -> keras.Model:
    """Train ``config`` again on train+validation for exactly ``epochs`` epochs (what early
    stopping found), the way the trial trained: same seed, phases and learning rates.

    Nothing is measured here: the validation images are training images now. The test split
    stays out, as everywhere.
    """
    if epochs < 1:
        raise ValueError(f"`epochs >= 1` must hold for a refit, but got {epochs}.")
    keras.backend.clear_session()
    apply_precision()
    global_state = random.getstate(), np.random.get_state()
    keras.utils.set_random_seed(config.seed)
    try:
        split = data.split(config.scheme)
        merged = np.sort(np.concatenate([split.indices["train"], split.indices["val"]]))
        split = replace(split, indices={**split.indices, "train": merged})
        built = build_model(config, split.scheme.num_classes)
        feed = trial_feed(built, config, data, split)
        fit_model(built, replace(config, max_epochs=epochs), feed, early_stopping=False)
        return built.model
    finally:
        random.setstate(global_state[0])
        np.random.set_state(global_state[1])

"""Run one trial from its ``TrialConfig``: data, model, fit, validation metrics. No Optuna here."""

from __future__ import annotations

import gc
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np

from cxrdata import ImageArrays, Manifest, Split, get_scheme, load_images, make_split
from cxrdata._pipeline import make_dataset
from search.metrics import TrialMetrics, compute_metrics
from search.model import BuiltModel, build_model
from search.space import TrialConfig
from search.train import FitResult, Reporter, fit_model

__all__ = ["TrialData", "TrialOutcome", "run_trial"]


@dataclass
class TrialData:
    """A worker's view of the dataset: the manifest, plus arrays and splits made once per worker.

    Decoded images are cached on disk per image size (shared by all workers) and kept in
    memory per process, so no trial decodes an image another trial already decoded.
    """

    manifest: Manifest
    cache_dir: Path | None = None
    split_seed: int = 0
    _arrays: dict[tuple[int, float], ImageArrays] = field(default_factory=dict)
    _splits: dict[str, Split] = field(default_factory=dict)

    def arrays(self, image_size: int, crop: float) -> ImageArrays:
        key = (image_size, crop)
        if key not in self._arrays:
            self._arrays[key] = load_images(self.manifest, image_size, crop=crop, cache_dir=self.cache_dir)
        return self._arrays[key]

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


def _count(weights: list[keras.Variable]) -> int:
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
    process do not pile up graphs.
    """
    started = time.perf_counter()
    keras.backend.clear_session()
    # Keras seeds Python's and NumPy's global generators too; put them back afterwards so the
    # caller's own randomness (Optuna's samplers among it) does not repeat trial after trial.
    global_state = random.getstate(), np.random.get_state()
    keras.utils.set_random_seed(config.seed)
    split = data.split(config.scheme)
    arrays = data.arrays(config.image_size, config.crop)
    train = make_dataset(
        arrays,
        split.indices["train"],
        split.labels,
        batch_size=config.batch_size,
        shuffle=True,
        augment_strength=config.augment_strength,
        seed=config.seed,
    )
    val_idx = split.indices["val"][arrays.valid[split.indices["val"]]]
    val = make_dataset(arrays, val_idx, split.labels, batch_size=config.batch_size)
    built = build_model(config, split.scheme.num_classes)
    try:
        fit = fit_model(built, config, train, val, report=report)
        metrics = None
        if not fit.pruned:
            proba = built.model.predict(val, verbose=0)
            metrics = compute_metrics(
                split.labels[val_idx], proba, split.scheme.class_names, split="val", loss=fit.best_val_loss
            )
        return TrialOutcome(
            config=config,
            fit=fit,
            metrics=metrics,
            wall_time_s=time.perf_counter() - started,
            params=built.model.count_params(),
            trainable_params=_count(built.model.trainable_weights),
            built=built if keep_model else None,
            split_fingerprint=split.fingerprint,
        )
    finally:
        random.setstate(global_state[0])
        np.random.set_state(global_state[1])
        if not keep_model:
            del built
            keras.backend.clear_session()
            gc.collect()

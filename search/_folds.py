"""One trial by K-fold cross-validation inside train+validation (``folds > 1``); the test split stays out.

A single validation split of 360 images moves a COVID sensitivity by several points between
equally good models; K folds measure every train+validation image once, out of fold. The
trial then reports:

- its figures as the mean over folds, with each figure's spread (standard deviation) and
  per-fold values kept beside them;
- its COVID threshold chosen on the pooled out-of-fold probabilities (1,620 images in the
  shared sample instead of 360), and the sensitivity and specificity it gives there, with
  Wilson intervals over the pooled counts;
- the pooled out-of-fold probabilities themselves, so ensembles are selected on them too;
- the K fold models (a bag: exported, they average), the COVID AUC with the lungs hidden on
  the pooled out-of-fold images (each measured by the fold that held it out), and Grad-CAM lung
  focus as the mean of their heatmaps on the validation images with lung masks.

Pruning sees the running mean validation loss: at epoch ``e`` of fold ``k`` the pruner is told
``(best losses of folds 0..k-1 + this epoch's loss) / (k + 1)`` at step ``k * max_epochs + e``,
so every trial of a study reports the same steps and a trial whose first folds lag is stopped
before it trains the rest.
"""

from __future__ import annotations

import gc
import random
import tempfile
import time
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import keras
import numpy as np

from cxrdata import Split, make_folds
from search._accel import apply_precision
from search._hidden import HIDDEN_IMAGES, hidden_lungs_auc, hidden_lungs_entries, hidden_lungs_proba
from search._trial import (
    TrialData,
    TrialOutcome,
    count_params,
    covid_heatmaps,
    focus_entries,
    focus_of,
    measure_mistakes,
    trial_feed,
)
from search.metrics import TrialMetrics, compute_metrics
from search.model import build_model
from search.space import TrialConfig
from search.store import Predictions, mistake_candidates
from search.train import FitResult, Reporter, fit_model

__all__ = ["SPREAD_FIGURES", "run_folds"]

# Figures averaged over folds (the rest of a fold trial's figures come from the pooled predictions).
SPREAD_FIGURES = (
    "loss", "accuracy", "balanced_accuracy", "covid_sensitivity", "covid_specificity", "covid_ppv", "covid_npv",
    "covid_auc", "roc_auc",
)  # fmt: skip


def fold_split(split: Split, folds: list[np.ndarray], k: int) -> Split:
    """The split of fold ``k``: validated on ``folds[k]``, trained on the other folds, same test split."""
    train = np.sort(np.concatenate([f for i, f in enumerate(folds) if i != k]))
    return replace(split, indices={"train": train, "val": folds[k], "test": split.indices["test"]})


def _spread(per_fold: list[TrialMetrics]) -> dict[str, dict[str, Any]]:
    out = {}
    for name in SPREAD_FIGURES:
        values = [getattr(m, name) for m in per_fold]
        known = [float(v) for v in values if v is not None]
        out[name] = {
            "mean": float(np.mean(known)) if known else None,
            "std": float(np.std(known)) if len(known) > 1 else None,
            "folds": values,
        }
    return out


def _metrics(pooled: TrialMetrics, spread: dict[str, dict[str, Any]]) -> TrialMetrics:
    """The pooled out-of-fold metrics with the per-fold means in place of the single figures."""
    means = {name: spread[name]["mean"] for name in SPREAD_FIGURES if name in {f.name for f in fields(pooled)}}
    return replace(pooled, **means)


class _Run:
    """The state one cross-validated trial accumulates fold after fold."""

    def __init__(self, config: TrialConfig, data: TrialData, split: Split, keep_model: bool) -> None:
        self.config, self.data, self.split = config, data, split
        self.fit = FitResult()
        self.best_losses: list[float] = []
        self.best_epochs: list[int] = []
        self.per_fold: list[TrialMetrics] = []
        self.oof: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self.chosen = focus_entries(data, config, split)
        self.heat = np.zeros((len(self.chosen), config.image_size, config.image_size), dtype=np.float32)
        self.folder = tempfile.TemporaryDirectory(prefix="cxr-folds-") if keep_model else None
        self.models: list[Path] = []
        self.params = self.trainable = 0
        self.routes: list[str] = []
        self.hidden: list[tuple[np.ndarray, np.ndarray]] = []  # per fold: (labels, COVID proba) with the lungs hidden
        self.mistake_heat: dict[int, np.ndarray] = {}  # entry -> COVID heatmap, from the fold that predicted it

    def reporter(self, k: int, report: Reporter | None) -> Reporter | None:
        if report is None:
            return None
        done = sum(self.best_losses)

        def running_mean(epoch: int, val_loss: float) -> bool:
            return report(k * self.config.max_epochs + epoch, (done + val_loss) / (k + 1))

        return running_mean

    def fold(self, k: int, split: Split, report: Reporter | None) -> bool:
        """Train and measure fold ``k``; False when the pruner stopped the trial."""
        keras.backend.clear_session()
        apply_precision()
        keras.utils.set_random_seed(self.config.seed + k)
        built = build_model(self.config, split.scheme.num_classes)
        feed = trial_feed(built, self.config, self.data, split)
        fit = fit_model(built, self.config, feed, report=self.reporter(k, report))
        offset = k * self.config.max_epochs
        self.fit.history += [replace(r, epoch=offset + r.epoch, phase=f"f{k + 1} {r.phase}") for r in fit.history]
        self.routes += feed.routes
        if fit.pruned:
            self.fit.pruned = True
            return False
        assert feed.last is not None
        model, val = feed.last
        proba = np.asarray(model.predict(val, verbose=0))
        labels = split.labels[feed.val_indices]
        self.per_fold.append(compute_metrics(labels, proba, split.scheme.class_names, loss=fit.best_val_loss))
        self.oof.append((feed.val_indices, labels, proba))
        self.best_losses.append(fit.best_val_loss)
        self.best_epochs.append(fit.best_epoch)
        hidden = hidden_lungs_entries(self.data, self.config, feed.val_indices, HIDDEN_IMAGES // self.config.folds)
        self.hidden.append((split.labels[hidden], hidden_lungs_proba(built.model, self.data, self.config, hidden)))
        if len(self.chosen):
            self.heat += covid_heatmaps(built, self.data, self.config, self.chosen) / self.config.folds
        # The threshold is chosen on all folds: keep what any threshold may show (<= 3 * MISTAKES images).
        candidates = feed.val_indices[mistake_candidates(labels, proba)]
        if len(candidates):
            heat = covid_heatmaps(built, self.data, self.config, candidates)
            self.mistake_heat.update(zip(candidates.tolist(), heat, strict=True))
        self.params, self.trainable = built.model.count_params(), count_params(built.model.trainable_weights)
        if self.folder is not None:
            path = Path(self.folder.name) / f"fold-{k}.keras"
            built.model.save(path)
            self.models.append(path)
        del built, model
        return True

    def outcome(self, started: float) -> TrialOutcome:
        config, split = self.config, self.split
        done = TrialOutcome(
            config=config, fit=self.fit, metrics=None, wall_time_s=0.0, params=self.params,
            trainable_params=self.trainable, split_fingerprint=split.fingerprint, routes=self.routes,
        )  # fmt: skip
        if not self.fit.pruned:
            indices, labels, proba = (np.concatenate(parts) for parts in zip(*self.oof, strict=True))
            order = np.argsort(indices)
            indices, labels, proba = indices[order], labels[order], proba[order]
            self.fit.best_val_loss = float(np.mean(self.best_losses))
            self.fit.best_epoch = round(float(np.mean(self.best_epochs)))  # within a fold: what a refit trains
            pooled = compute_metrics(
                labels, proba, split.scheme.class_names, split="val", loss=self.fit.best_val_loss, target=config.target
            )
            done.fold_spread = _spread(self.per_fold)
            done.metrics = _metrics(pooled, done.fold_spread)
            done.predictions = Predictions("oof", indices, labels, proba)
            done.focus, done.focus_source, done.overlays = focus_of(self.data, config, self.chosen, self.heat)
            hidden_labels, hidden_proba = (np.concatenate(parts) for parts in zip(*self.hidden, strict=True))
            done.hidden_lungs_auc = hidden_lungs_auc(hidden_labels, hidden_proba)
            done.mistakes = measure_mistakes(
                self.data, config, split, done.metrics, done.predictions,
                lambda entries: np.stack([self.mistake_heat[int(e)] for e in entries]),
                available=np.array(sorted(self.mistake_heat), dtype=np.int64),
            )  # fmt: skip
            done.fold_models, done._fold_dir = self.models, self.folder
        done.wall_time_s = time.perf_counter() - started
        return done


def run_folds(
    config: TrialConfig, data: TrialData, *, report: Reporter | None = None, keep_model: bool = False
) -> TrialOutcome:
    """Cross-validate one configuration inside train+validation; see the module's description."""
    started = time.perf_counter()
    global_state = random.getstate(), np.random.get_state()
    split = data.split(config.scheme)
    folds = make_folds(data.manifest, split, config.folds)
    run = _Run(config, data, split, keep_model)
    try:
        for k in range(config.folds):
            if not run.fold(k, fold_split(split, folds, k), report):
                break
        return run.outcome(started)
    finally:
        random.setstate(global_state[0])
        np.random.set_state(global_state[1])
        keras.backend.clear_session()
        gc.collect()

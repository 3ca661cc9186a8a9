"""Fit one trial's model: head warm-up, fine-tuning, early stopping, pruning reports.

Optuna stays outside: pruning reaches this module as a ``report(epoch, val_loss) -> prune?``
callable, so a stored ``TrialConfig`` can be re-trained without a study.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import keras
import tensorflow as tf

from search.model import BuiltModel
from search.space import TrialConfig

__all__ = ["EpochRecord", "Feed", "FitResult", "Reporter", "fit_model"]

Reporter = Callable[[int, float], bool]
# Freeze the model to a depth; return the model to fit and its training and validation data.
Feed = Callable[[float], tuple[keras.Model, tf.data.Dataset, tf.data.Dataset]]


@dataclass(frozen=True)
class EpochRecord:
    epoch: int
    phase: str  # "head" (backbone frozen) or "fine-tune"
    loss: float
    val_loss: float
    accuracy: float | None
    val_accuracy: float | None
    learning_rate: float
    seconds: float


@dataclass
class FitResult:
    history: list[EpochRecord] = field(default_factory=list)
    pruned: bool = False
    best_val_loss: float = float("inf")
    best_epoch: int = -1

    @property
    def epochs_run(self) -> int:
        return len(self.history)


class _Recorder(keras.callbacks.Callback):  # type: ignore[misc]
    """Keeps the epoch history and asks the pruner after every epoch.

    On a prune it stops training instead of raising, so the epochs that ran are still
    recorded (the leaderboard draws the learning curve up to the prune).
    """

    def __init__(self, result: FitResult, phase: str, learning_rate: float, report: Reporter | None) -> None:
        super().__init__()
        self.result, self.phase, self.learning_rate, self.report = result, phase, learning_rate, report
        self.started = time.perf_counter()

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        logs = logs or {}
        val_loss = float(logs["val_loss"])
        self.result.history.append(
            EpochRecord(
                epoch=epoch,
                phase=self.phase,
                loss=float(logs["loss"]),
                val_loss=val_loss,
                accuracy=_maybe(logs.get("accuracy")),
                val_accuracy=_maybe(logs.get("val_accuracy")),
                learning_rate=self.learning_rate,
                seconds=time.perf_counter() - self.started,
            )
        )
        if val_loss < self.result.best_val_loss:
            self.result.best_val_loss, self.result.best_epoch = val_loss, epoch
        if self.report is not None and self.report(epoch, val_loss):
            self.result.pruned = True
            self.model.stop_training = True


def _maybe(value: Any) -> float | None:
    return None if value is None else float(value)


def _compile(model: keras.Model, learning_rate: float) -> None:
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(),
        metrics=["accuracy"],
    )


def fit_model(
    built: BuiltModel,
    config: TrialConfig,
    feed: Feed,
    *,
    report: Reporter | None = None,
    early_stopping: bool = True,
) -> FitResult:
    """Train to the best validation loss, with early stopping and optional pruning.

    A pretrained backbone that the trial unfreezes (``freeze_depth < 1``) first gets
    ``warmup_epochs`` with the whole backbone frozen: a random head's gradients would
    otherwise wreck the ImageNet features. Fine-tuning then continues the epoch count at
    ``learning_rate * fine_tune_lr_factor``, so pruning steps stay monotonic.

    ``feed(depth)`` freezes the model to ``depth`` and says what to fit: the whole model on
    images, or only its trainable tail on cached activations (same layers, same weights).

    ``early_stopping=False`` trains exactly ``config.max_epochs`` epochs and keeps the last
    weights: a refit on train+validation has no held-out loss to stop on.
    """
    result = FitResult()

    def phase(name: str, learning_rate: float, start: int, depth: float) -> None:
        model, train, val = feed(depth)
        _compile(model, learning_rate)
        callbacks: list[keras.callbacks.Callback] = [_Recorder(result, name, learning_rate, report)]
        if early_stopping:
            callbacks.insert(
                0,
                keras.callbacks.EarlyStopping(monitor="val_loss", patience=config.patience, restore_best_weights=True),
            )
        model.fit(
            train,
            validation_data=val,
            initial_epoch=start,
            epochs=config.max_epochs if name != "head" else min(warmup, config.max_epochs),
            callbacks=callbacks,
            shuffle=False,  # the tf.data pipeline shuffles, seeded
            verbose=0,
        )

    pretrained = config.weights != "none"
    warmup = config.warmup_epochs if pretrained and config.freeze_depth < 1.0 else 0
    if not warmup:
        phase("train", config.learning_rate, 0, config.freeze_depth)
        return result

    phase("head", config.learning_rate, 0, 1.0)
    if result.pruned or config.max_epochs <= warmup:
        return result
    head_best, head_weights = result.best_val_loss, built.model.get_weights()
    phase("fine-tune", config.learning_rate * config.fine_tune_lr_factor, warmup, config.freeze_depth)
    tuned = [r.val_loss for r in result.history if r.phase == "fine-tune"]
    if early_stopping and tuned and head_best <= min(tuned):
        built.model.set_weights(head_weights)  # fine-tuning never beat the warmed-up head
    return result

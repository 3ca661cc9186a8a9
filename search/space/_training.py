"""``TrainingSettings``: what every trial of a study shares, and the one place their defaults live.

:class:`~search.space.TrialConfig` takes its defaults from here, and the packaged
``default.toml`` is tested to say the same.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from cxrdata import did_you_mean
from search._errors import SearchError
from search.metrics import OperatingTarget

__all__ = ["DEFAULTS", "PRUNERS", "TrainingSettings"]

PRUNERS = ("percentile", "median", "hyperband", "none")


@dataclass(frozen=True)
class TrainingSettings:
    """What every trial of a study shares."""

    image_size: int = 224
    batch_size: int = 32
    max_epochs: int = 12
    patience: int = 3
    warmup_epochs: int = 1
    fine_tune_lr_factor: float = 0.1
    crop: float = 0.0
    pruner: str = "percentile"
    pruner_percentile: float = 75.0  # "percentile": prune a trial worse than this share of completed trials
    pruner_startup_trials: int = 4
    pruner_warmup_epochs: int = 3
    # The operating point each trial's COVID threshold is chosen for on validation: one of the two.
    target_specificity: float | None = 0.95
    target_sensitivity: float | None = None
    folds: int = 1  # > 1: K-fold cross-validation inside train+validation
    # A constraint on every completed trial: lung focus / lung area (Grad-CAM) at least this much,
    # given to Optuna's sampler (search._study.focus_constraint) and put first in the ranking.
    # None: no constraint.
    min_lung_focus_ratio: float | None = None
    # A constraint on every completed trial: COVID AUC on validation images with the lungs hidden
    # (search._hidden) between 1 - this and this, given to Optuna's sampler (search._study.hidden_constraint)
    # and put first in the ranking with the one above. None: no constraint.
    max_hidden_lungs_auc: float | None = None

    @property
    def target(self) -> OperatingTarget:
        if self.target_sensitivity is not None:
            return OperatingTarget("sensitivity", self.target_sensitivity)
        assert self.target_specificity is not None
        return OperatingTarget("specificity", self.target_specificity)

    def check(self) -> None:
        ratio = self.min_lung_focus_ratio
        if ratio is not None and not _finite_at_least_zero(ratio):
            raise SearchError(f"`min_lung_focus_ratio >= 0` must hold, but got min_lung_focus_ratio={ratio!r}.")
        auc = self.max_hidden_lungs_auc
        if auc is not None and not (_finite_at_least_zero(auc) and 0.5 <= auc <= 1.0):
            raise SearchError(f"`0.5 <= max_hidden_lungs_auc <= 1` must hold, but got max_hidden_lungs_auc={auc!r}.")
        rules = [
            (16 <= self.image_size <= 2048, "`16 <= image_size <= 2048`", f"image_size={self.image_size}"),
            (self.batch_size >= 1, "`batch_size >= 1`", f"batch_size={self.batch_size}"),
            (self.max_epochs >= 1, "`max_epochs >= 1`", f"max_epochs={self.max_epochs}"),
            (self.patience >= 1, "`patience >= 1`", f"patience={self.patience}"),
            (
                0 <= self.warmup_epochs < self.max_epochs,
                "`0 <= warmup_epochs < max_epochs`",
                f"(warmup_epochs={self.warmup_epochs}, max_epochs={self.max_epochs})",
            ),
            (0 < self.fine_tune_lr_factor <= 1, "`0 < fine_tune_lr_factor <= 1`", f"{self.fine_tune_lr_factor}"),
            (0 <= self.crop < 0.5, "`0 <= crop < 0.5`", f"crop={self.crop}"),
            (self.pruner_startup_trials >= 0, "`pruner_startup_trials >= 0`", f"{self.pruner_startup_trials}"),
            (self.pruner_warmup_epochs >= 0, "`pruner_warmup_epochs >= 0`", f"{self.pruner_warmup_epochs}"),
            (0 < self.pruner_percentile < 100, "`0 < pruner_percentile < 100`", f"{self.pruner_percentile}"),
            (self.folds >= 2 or self.folds == 1, "`folds >= 2` (or 1 for no cross-validation)", f"folds={self.folds}"),
            (
                (self.target_specificity is None) != (self.target_sensitivity is None),
                "exactly one of `target_specificity` and `target_sensitivity`",
                f"(target_specificity={self.target_specificity}, target_sensitivity={self.target_sensitivity})",
            ),
        ]
        for ok, rule, got in rules:
            if not ok:
                raise SearchError(f"{rule} must hold, but got {got}.")
        try:
            self.target  # noqa: B018 - checks the target's range
        except ValueError as exc:
            raise SearchError(str(exc)) from None
        if self.pruner not in PRUNERS:
            hint = did_you_mean(self.pruner, PRUNERS)
            raise SearchError(f"`pruner` must be one of {', '.join(PRUNERS)}, but got {self.pruner!r}.{hint}")


def _finite_at_least_zero(value: object) -> bool:
    """A real number (not a bool, a string, NaN or infinity) >= 0."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value >= 0


DEFAULTS = TrainingSettings()

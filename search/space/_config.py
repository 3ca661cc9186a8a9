"""``TrialConfig``: everything one trial needs, plain and JSON-able.

A trial can be re-run from its stored config alone, without Optuna.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from typing import Any

from search.metrics import OperatingTarget
from search.space._training import DEFAULTS

__all__ = ["TrialConfig"]


@dataclass(frozen=True)
class TrialConfig:
    # Searched.
    backbone: str
    freeze_depth: float  # fraction of backbone layers frozen from the input side
    head_width: int
    dropout: float
    learning_rate: float
    augment_strength: float
    scheme: str
    input_region: str = "full"  # "full", "lung_crop", "lung_mask" or "lung_crop_mask" (cxrdata.REGIONS)
    # Weight of the training penalty on COVID Grad-CAM energy outside the lungs (0: plain cross-entropy).
    focus_weight: float = 0.0
    # Fixed for a study: the defaults are TrainingSettings' (one place for them).
    image_size: int = DEFAULTS.image_size
    batch_size: int = DEFAULTS.batch_size
    max_epochs: int = DEFAULTS.max_epochs
    patience: int = DEFAULTS.patience
    warmup_epochs: int = DEFAULTS.warmup_epochs  # head-only epochs before unfreezing a pretrained backbone
    fine_tune_lr_factor: float = DEFAULTS.fine_tune_lr_factor
    crop: float = DEFAULTS.crop
    weights: str = "imagenet"  # "imagenet", "none" or a folder of Keras weight files
    seed: int = 0
    # How the trial is measured: the COVID threshold's target on validation (one of the two),
    # and K-fold cross-validation inside train+validation when folds > 1.
    target_specificity: float | None = DEFAULTS.target_specificity
    target_sensitivity: float | None = DEFAULTS.target_sensitivity
    folds: int = DEFAULTS.folds

    @property
    def target(self) -> OperatingTarget:
        if self.target_sensitivity is not None:
            return OperatingTarget("sensitivity", self.target_sensitivity)
        specificity = DEFAULTS.target_specificity if self.target_specificity is None else self.target_specificity
        assert specificity is not None
        return OperatingTarget("specificity", specificity)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrialConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    @classmethod
    def from_json(cls, text: str) -> TrialConfig:
        return cls.from_dict(json.loads(text))

"""``TrialConfig``: everything one trial needs, plain and JSON-able.

A trial can be re-run from its stored config alone, without Optuna.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from typing import Any

from search.metrics import OperatingTarget

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
    # Fixed for a study.
    image_size: int = 224
    batch_size: int = 32
    max_epochs: int = 12
    patience: int = 3
    warmup_epochs: int = 1  # head-only epochs before unfreezing a pretrained backbone
    fine_tune_lr_factor: float = 0.1
    crop: float = 0.0
    weights: str = "imagenet"  # "imagenet", "none" or a folder of Keras weight files
    seed: int = 0
    # How the trial is measured: the COVID threshold's target on validation (one of the two),
    # and K-fold cross-validation inside train+validation when folds > 1.
    target_specificity: float | None = 0.95
    target_sensitivity: float | None = None
    folds: int = 1

    @property
    def target(self) -> OperatingTarget:
        if self.target_sensitivity is not None:
            return OperatingTarget("sensitivity", self.target_sensitivity)
        return OperatingTarget("specificity", 0.95 if self.target_specificity is None else self.target_specificity)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrialConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    @classmethod
    def from_json(cls, text: str) -> TrialConfig:
        return cls.from_dict(json.loads(text))

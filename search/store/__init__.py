"""The SQL results store: trials, epoch histories, predictions and artifact ids beside Optuna's tables."""

from search.store._predictions import Predictions
from search.store._ranking import (
    DEFAULT_RANKING,
    DIRECTIONS,
    MIN_SPECIFICITY,
    Ranking,
    check_min_specificity,
    meets_floor,
)
from search.store._schema import SCHEMA_VERSION, ArtifactRow, Base, EpochRow, PredictionRow, TrialRow
from search.store._store import ArtifactRecord, ResultStore, config_row, focus_like_flat_map, mask_url
from search.store._upgrade import upgrade_schema

__all__ = [
    "DEFAULT_RANKING",
    "DIRECTIONS",
    "MIN_SPECIFICITY",
    "SCHEMA_VERSION",
    "ArtifactRecord",
    "ArtifactRow",
    "Base",
    "EpochRow",
    "PredictionRow",
    "Predictions",
    "Ranking",
    "ResultStore",
    "TrialRow",
    "check_min_specificity",
    "config_row",
    "focus_like_flat_map",
    "mask_url",
    "meets_floor",
    "upgrade_schema",
]

"""The SQL results store: trials, epoch histories, predictions and artifact ids beside Optuna's tables."""

from search.store._lock import creation_lock
from search.store._predictions import Predictions
from search.store._ranking import (
    DEFAULT_RANKING,
    DIRECTIONS,
    MIN_SPECIFICITY,
    Ranking,
    check_min_lung_focus_ratio,
    check_min_specificity,
    meets_floor,
    meets_focus,
)
from search.store._schema import SCHEMA_VERSION, ArtifactRow, Base, EpochRow, PredictionRow, TrialRow
from search.store._store import ArtifactRecord, ResultStore, config_row, focus_like_flat_map
from search.store._upgrade import upgrade_schema
from search.store._url import DEFAULT_STORAGE, STORAGE_VARIABLE, add_storage_argument, mask_url, parse_url

__all__ = [
    "DEFAULT_RANKING",
    "DEFAULT_STORAGE",
    "DIRECTIONS",
    "MIN_SPECIFICITY",
    "SCHEMA_VERSION",
    "STORAGE_VARIABLE",
    "ArtifactRecord",
    "ArtifactRow",
    "Base",
    "EpochRow",
    "PredictionRow",
    "Predictions",
    "Ranking",
    "ResultStore",
    "TrialRow",
    "add_storage_argument",
    "check_min_lung_focus_ratio",
    "check_min_specificity",
    "config_row",
    "creation_lock",
    "focus_like_flat_map",
    "mask_url",
    "meets_floor",
    "meets_focus",
    "parse_url",
    "upgrade_schema",
]

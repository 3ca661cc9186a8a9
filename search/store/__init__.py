"""The SQL results store: trials, epoch histories and artifact ids beside Optuna's tables."""

from search.store._schema import SCHEMA_VERSION, ArtifactRow, Base, EpochRow, TrialRow
from search.store._store import (
    MIN_SPECIFICITY,
    RANKING,
    ArtifactRecord,
    ResultStore,
    below_floor,
    check_min_specificity,
    config_row,
    focus_like_flat_map,
    mask_url,
    meets_floor,
)

__all__ = [
    "MIN_SPECIFICITY",
    "RANKING",
    "SCHEMA_VERSION",
    "ArtifactRecord",
    "ArtifactRow",
    "Base",
    "EpochRow",
    "ResultStore",
    "TrialRow",
    "below_floor",
    "check_min_specificity",
    "config_row",
    "focus_like_flat_map",
    "mask_url",
    "meets_floor",
]

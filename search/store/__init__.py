"""The SQL results store: trials, epoch histories, predictions, artifact ids and reviewers' verdicts
beside Optuna's tables."""

from search.store._lock import creation_lock
from search.store._mistakes import (
    MISTAKE_KINDS,
    MISTAKES,
    MistakeCounts,
    count_mistakes,
    decide,
    mistake_candidates,
    parse_mistakes,
    pick_mistakes,
)
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
from search.store._reviews import (
    NOTE_MAX_CHARS,
    REVIEWER_MAX_CHARS,
    VERDICTS,
    Review,
    check_note,
    check_reviewer,
    check_verdict,
    describe_shortcut,
    trial_label,
)
from search.store._schema import SCHEMA_VERSION, ArtifactRow, Base, EpochRow, PredictionRow, ReviewRow, TrialRow
from search.store._store import (
    HIDDEN_LUNGS_AUC_LIMIT,
    ArtifactRecord,
    ResultStore,
    config_row,
    decides_without_lungs,
    focus_like_flat_map,
)
from search.store._upgrade import upgrade_schema
from search.store._url import DEFAULT_STORAGE, STORAGE_VARIABLE, add_storage_argument, mask_url, parse_url

__all__ = [
    "DEFAULT_RANKING",
    "DEFAULT_STORAGE",
    "DIRECTIONS",
    "HIDDEN_LUNGS_AUC_LIMIT",
    "MIN_SPECIFICITY",
    "MISTAKES",
    "MISTAKE_KINDS",
    "NOTE_MAX_CHARS",
    "REVIEWER_MAX_CHARS",
    "SCHEMA_VERSION",
    "STORAGE_VARIABLE",
    "VERDICTS",
    "ArtifactRecord",
    "ArtifactRow",
    "Base",
    "EpochRow",
    "MistakeCounts",
    "PredictionRow",
    "Predictions",
    "Ranking",
    "ResultStore",
    "Review",
    "ReviewRow",
    "TrialRow",
    "add_storage_argument",
    "check_min_lung_focus_ratio",
    "check_min_specificity",
    "check_note",
    "check_reviewer",
    "check_verdict",
    "config_row",
    "count_mistakes",
    "creation_lock",
    "decide",
    "decides_without_lungs",
    "describe_shortcut",
    "focus_like_flat_map",
    "mask_url",
    "meets_floor",
    "meets_focus",
    "mistake_candidates",
    "parse_mistakes",
    "parse_url",
    "pick_mistakes",
    "trial_label",
    "upgrade_schema",
]

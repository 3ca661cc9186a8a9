"""The SQL results store: trials, epoch histories and artifact ids beside Optuna's tables."""

from search.store._schema import SCHEMA_VERSION, ArtifactRow, Base, EpochRow, TrialRow
from search.store._store import RANKING, ArtifactRecord, ResultStore, config_row, mask_url

__all__ = [
    "RANKING",
    "SCHEMA_VERSION",
    "ArtifactRecord",
    "ArtifactRow",
    "Base",
    "EpochRow",
    "ResultStore",
    "TrialRow",
    "config_row",
    "mask_url",
]

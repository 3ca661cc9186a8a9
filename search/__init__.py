"""Model search over transfer-learning backbones for chest X-ray classification.

Importing this package is cheap: TensorFlow loads only where models are built or trained.
The runtime API (a trial, a study's handle, the stored models) is imported on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from search._errors import SearchError
from search._settings import Settings, check_settings, settings

if TYPE_CHECKING:
    from search._accel import configure_precision
    from search._records import download_model, download_models, find_trial, load_models, study_info, study_manifest
    from search._study import StudyInfo, create_study, load_study, make_pruner, make_storage
    from search._trial import TrialData, TrialOutcome, run_trial

# Name -> module, imported when first asked for (PEP 562): the leaderboard and launch's parent
# import `search` and must not load TensorFlow or Optuna's storages for it.
_LAZY = {
    **dict.fromkeys(("run_trial", "TrialData", "TrialOutcome"), "search._trial"),
    **dict.fromkeys(("StudyInfo", "create_study", "load_study", "make_pruner", "make_storage"), "search._study"),
    **dict.fromkeys(
        ("download_model", "download_models", "find_trial", "load_models", "study_info", "study_manifest"),
        "search._records",
    ),
    "configure_precision": "search._accel",
}

__all__ = [
    "SearchError",
    "Settings",
    "StudyInfo",
    "TrialData",
    "TrialOutcome",
    "check_settings",
    "configure_precision",
    "create_study",
    "download_model",
    "download_models",
    "find_trial",
    "load_models",
    "load_study",
    "make_pruner",
    "make_storage",
    "run_trial",
    "settings",
    "study_info",
    "study_manifest",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'search' has no attribute {name!r}")

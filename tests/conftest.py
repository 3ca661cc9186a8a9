"""Shared fixtures: the real sample in ../shared and small synthetic datasets."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cxrdata.synthetic import SyntheticSpec, make_synthetic_dataset

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("CXR_SHARED", REPO.parent / "shared"))
RADIOGRAPHY = SHARED / "cxr" / "radiography" / "COVID-19_Radiography_Dataset"
LUNG_MASKS = SHARED / "cxr" / "lung-masks"
WEIGHTS = SHARED / "weights"


@pytest.fixture(scope="session")
def radiography() -> Path:
    """The real 1,800-image sample; its absence is a broken checkout, not a reason to skip."""
    assert RADIOGRAPHY.is_dir(), f"the shared sample must be at {RADIOGRAPHY} (set CXR_SHARED to its parent)"
    return RADIOGRAPHY


@pytest.fixture(scope="session")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small three-class synthetic dataset with masks and patient ids (read-only in tests)."""
    root = tmp_path_factory.mktemp("synthetic")
    return make_synthetic_dataset(root, SyntheticSpec(per_class=12, size=48, patients_per_class=6, seed=1))


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A three-class synthetic dataset small enough to train on in seconds."""
    root = tmp_path_factory.mktemp("tiny")
    return make_synthetic_dataset(root, SyntheticSpec(per_class=16, size=40, seed=3))

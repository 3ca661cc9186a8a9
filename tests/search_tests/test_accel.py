"""Precision per process: float32 on CPU by default; mixed precision trains and caches too."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import keras
import numpy as np
import pytest

from cxrdata import scan
from search._accel import configure_precision
from search._trial import TrialData, run_trial
from search.space import TrialConfig
from tests.conftest import WEIGHTS


@pytest.fixture
def restore_policy() -> Iterator[None]:
    yield
    configure_precision("float32")


def test_auto_is_float32_without_a_gpu(restore_policy: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CXR_PRECISION", raising=False)
    assert configure_precision() == "float32"


def test_a_bad_precision_is_one_sentence(restore_policy: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CXR_PRECISION", "half")
    with pytest.raises(ValueError, match="`CXR_PRECISION` must be one of auto, float32, mixed, but got 'half'"):
        configure_precision()


@pytest.mark.slow
@pytest.mark.parametrize("depth", [1.0, 0.5])
def test_mixed_precision_trains_on_cached_features(
    restore_policy: None, tiny: Path, tmp_path: Path, depth: float
) -> None:
    assert configure_precision("mixed") == "mixed_float16"
    config = TrialConfig(
        "MobileNet_0.25", depth, 16, 0.1, 3e-3, 0.0, "three", image_size=32, max_epochs=2, weights=str(WEIGHTS)
    )
    outcome = run_trial(config, TrialData(scan(tiny), cache_dir=tmp_path), keep_model=True)
    assert all(r.startswith("features:") for r in outcome.routes)
    assert outcome.metrics is not None and np.isfinite(outcome.fit.best_val_loss)
    assert outcome.built is not None
    assert outcome.built.model.get_layer("head_dense").compute_dtype == "float16"
    assert outcome.built.model.output.dtype == "float32", "the softmax stays in float32"
    keras.backend.clear_session()  # what a worker does between trials
    again = run_trial(config, TrialData(scan(tiny), cache_dir=tmp_path), keep_model=True)
    assert again.built is not None and again.built.model.get_layer("head_dense").compute_dtype == "float16"

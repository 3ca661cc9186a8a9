"""The feature cache: same training as on images, computed once per key, shared on disk."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import keras
import numpy as np
import pytest

from cxrdata import load_images, scan
from search._trial import TrialData, run_trial
from search.features import FeatureCache, find_boundary
from search.model import build_model, set_freeze_depth
from search.space import TrialConfig
from tests.conftest import WEIGHTS


def _config(backbone: str = "MobileNet_0.25", depth: float = 1.0, augment: float = 0.0, **kw: object) -> TrialConfig:
    fixed: dict[str, object] = {"image_size": 32, "max_epochs": 3, "weights": str(WEIGHTS), "batch_size": 8}
    return TrialConfig(backbone, depth, 16, 0.2, 3e-3, augment, "three", **{**fixed, **kw})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("backbone", "depth", "boundary_is_pool"),
    [
        ("MobileNet_0.25", 1.0, True),
        ("MobileNet_0.25", 0.5, False),
        # residual additions: several tensors cross
        pytest.param("MobileNetV2_0.35", 0.75, False, marks=pytest.mark.slow),
        pytest.param("DenseNet121", 0.5, False, marks=pytest.mark.slow),  # concatenations: several tensors cross
    ],
)
def test_the_tail_on_boundary_activations_equals_the_whole_model(
    backbone: str, depth: float, boundary_is_pool: bool
) -> None:
    keras.backend.clear_session()
    built = build_model(_config(backbone, depth, weights="none", image_size=48 if backbone == "DenseNet121" else 32), 3)
    set_freeze_depth(built, depth)
    boundary = find_boundary(built.model)
    assert boundary is not None
    assert (boundary.names == ("head_pool",)) == boundary_is_pool
    images = np.random.default_rng(0).uniform(0, 255, (4, *built.model.input_shape[1:])).astype(np.float32)
    activations = boundary.front.predict(images, verbose=0)
    through_tail = boundary.tail.predict(activations, verbose=0)
    whole = built.model.predict(images, verbose=0)
    np.testing.assert_allclose(through_tail, whole, atol=1e-5)
    trainable_in_front = [w for layer in boundary.front.layers for w in layer.trainable_weights]
    assert not trainable_in_front, "nothing trainable may be cached"


@pytest.mark.parametrize("backbone", ["MobileNet_0.25", "VGG16", "DenseNet121"])  # tf, caffe, torch
def test_no_boundary_when_the_first_backbone_layer_trains(backbone: str) -> None:
    keras.backend.clear_session()
    built = build_model(_config(backbone, depth=0.0, weights="none"), 3)
    assert find_boundary(built.model) is None, "scaled input alone is not worth caching"


@pytest.mark.slow
@pytest.mark.parametrize("depth", [1.0, 0.5])
def test_a_cached_trial_trains_like_one_on_images(tiny: Path, tmp_path: Path, depth: float) -> None:
    """Same batches in the same order: the learning curves agree to float rounding."""
    config = _config(depth=depth)
    manifest = scan(tiny)
    cached = run_trial(config, TrialData(manifest, cache_dir=tmp_path))
    plain = run_trial(config, TrialData(manifest, use_features=False))
    assert plain.routes == ["images"] * len(plain.routes)
    assert all(r.startswith("features:") for r in cached.routes)
    assert len(cached.routes) == (2 if depth < 1 else 1), "warm-up and fine-tune each use their own boundary"
    np.testing.assert_allclose(
        [r.val_loss for r in cached.fit.history], [r.val_loss for r in plain.fit.history], rtol=2e-3, atol=2e-4
    )
    assert cached.metrics is not None and plain.metrics is not None
    assert cached.metrics.covid_sensitivity == plain.metrics.covid_sensitivity
    assert cached.metrics.accuracy == pytest.approx(plain.metrics.accuracy, abs=0.05)
    assert cached.focus is not None, "Grad-CAM runs on the whole model after training the tail"
    assert any((tmp_path / "features").glob("features-*/0.npy"))


def test_the_model_trained_on_features_is_the_whole_model(tiny: Path) -> None:
    config = _config()
    data = TrialData(scan(tiny))
    outcome = run_trial(config, data, keep_model=True)
    assert outcome.built is not None and outcome.metrics is not None
    split, arrays = data.split("three"), data.arrays(32, 0.0)
    val = split.indices["val"]
    proba = outcome.built.model.predict(np.asarray(arrays.images[val], np.float32), verbose=0)
    accuracy = float(np.mean(proba.argmax(1) == split.labels[val]))
    assert accuracy == pytest.approx(outcome.metrics.accuracy), "the images path reproduces the stored metrics"


@pytest.mark.slow
def test_augmented_trials_train_on_images(tiny: Path, tmp_path: Path) -> None:
    outcome = run_trial(_config(augment=0.5, max_epochs=1), TrialData(scan(tiny), cache_dir=tmp_path))
    assert outcome.routes == ["images"]
    assert not (tmp_path / "features").exists()


@pytest.mark.slow
def test_the_size_limit_sends_big_boundaries_to_images(
    tiny: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CXR_FEATURE_CACHE_GB", "0")
    outcome = run_trial(_config(max_epochs=1), TrialData(scan(tiny), cache_dir=tmp_path))
    assert outcome.routes == ["images"]


@pytest.mark.parametrize("value", ["lots", "-1"])
def test_a_bad_size_limit_is_one_sentence(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    from search.features import limit_bytes

    monkeypatch.setenv("CXR_FEATURE_CACHE_GB", value)
    with pytest.raises(ValueError, match="CXR_FEATURE_CACHE_GB"):
        limit_bytes()


def _compute(args: tuple[str, str]) -> tuple[int, float]:
    root, data = args
    keras.backend.clear_session()
    built = build_model(_config(), 3)
    boundary = find_boundary(built.model)
    assert boundary is not None
    images = load_images(scan(Path(data)), 32).images
    calls = []
    original = boundary.front.predict

    def counted(*a: object, **k: object) -> object:
        calls.append(1)
        return original(*a, **k)

    object.__setattr__(boundary.front, "predict", counted)
    features = FeatureCache(Path(root)).load_or_compute("k", boundary, images, 16)
    return len(calls), float(np.asarray(features[0]).sum())


@pytest.mark.slow
def test_concurrent_workers_compute_a_key_once(tiny: Path, tmp_path: Path) -> None:
    with multiprocessing.get_context("spawn").Pool(3) as pool:
        results = pool.map(_compute, [(str(tmp_path), str(tiny))] * 3)
    assert sum(calls for calls, _ in results) == 1, "the lock lets one worker compute, the others read"
    assert len({round(total, 3) for _, total in results}) == 1
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")) == ["features-k"]

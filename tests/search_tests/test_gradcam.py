"""Grad-CAM against an independent implementation, lung focus by hand, and the shortcut proof."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest
from tf_keras_vis.gradcam import Gradcam
from tf_keras_vis.utils.scores import CategoricalScore

from cxrdata import decode_image, prepare_image, scan
from cxrdata.synthetic import SyntheticSpec, make_synthetic_dataset
from search._trial import TrialData, run_trial
from search.gradcam import class_activation, gradcam, lung_focus
from search.model import build_model
from search.space import TrialConfig
from tests.conftest import WEIGHTS


@pytest.fixture(scope="module")
def xrays(radiography: Path) -> np.ndarray:
    paths = sorted(radiography.glob("*/images/*.png"))[::300][:6]
    return np.stack([prepare_image(decode_image(p), 128) for p in paths]).astype(np.float32)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("backbone", "weights"),
    [("MobileNetV2", str(WEIGHTS)), ("DenseNet121", str(WEIGHTS)), ("VGG16", "none"), ("Xception", "none")],
)
def test_gradcam_matches_tf_keras_vis(backbone: str, weights: str, xrays: np.ndarray) -> None:
    keras.utils.set_random_seed(3)
    built = build_model(TrialConfig(backbone, 1.0, 16, 0.0, 1e-3, 0.0, "three", image_size=128, weights=weights), 3)
    # The independent implementation scores the logits and reads the same layer (no seeking).
    reference = Gradcam(keras.Model(built.model.inputs, built.model.get_layer("head_logits").output), clone=False)
    compared = 0
    for class_index in range(3):
        ours = class_activation(built.model, built.gradcam_layer, xrays, class_index)
        theirs = np.asarray(
            reference(
                CategoricalScore([class_index] * len(xrays)),
                xrays,
                penultimate_layer=built.gradcam_layer,
                seek_penultimate_conv_layer=False,
                normalize_cam=False,
                expand_cam=False,
            )
        )
        for a, b in zip(ours, theirs, strict=True):
            if a.std() > 0 and b.std() > 0:
                assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.99
                compared += 1
    assert compared >= 3, "enough non-blank maps to compare"
    keras.backend.clear_session()


def test_heatmaps_are_normalised_and_blank_stays_blank(xrays: np.ndarray) -> None:
    built = build_model(
        TrialConfig("MobileNetV2", 1.0, 16, 0.0, 1e-3, 0.0, "three", image_size=128, weights=str(WEIGHTS)), 3
    )
    maps = gradcam(built.model, built.gradcam_layer, xrays, 0)
    assert maps.shape == (len(xrays), 128, 128)
    assert maps.min() >= 0 and maps.max() <= 1
    for m in maps:
        assert m.max() in (0.0, pytest.approx(1.0))


def _masks(n: int = 4, size: int = 20) -> np.ndarray:
    masks = np.zeros((n, size, size), dtype=bool)
    masks[:, 5:15, 2:8] = True
    masks[:, 5:15, 12:18] = True
    return masks


def test_lung_focus_by_hand() -> None:
    masks = _masks()
    area = masks[0].mean()
    inside = masks.astype(float)
    flat = np.ones(masks.shape)
    outside = (~masks).astype(float)
    blank = np.zeros(masks.shape)
    f = lung_focus(inside, masks)
    assert (f.energy, f.pointing, f.blank) == (1.0, 1.0, 0)
    assert f.ratio == pytest.approx(1 / area)
    f = lung_focus(flat, masks)
    assert f.energy == pytest.approx(area) and f.ratio == pytest.approx(1.0), "a flat map is the baseline"
    assert lung_focus(outside, masks).energy == 0.0
    f = lung_focus(blank, masks)
    assert (f.energy, f.ratio, f.pointing, f.n, f.blank) == (None, None, None, 4, 4), (
        "blank is reported, never NaN or perfect"
    )
    mixed = np.concatenate([inside[:2], blank[:2]])
    f = lung_focus(mixed, masks)
    assert (f.energy, f.n, f.blank) == (1.0, 4, 2)


def test_lung_focus_shape_is_checked() -> None:
    with pytest.raises(ValueError, match=r"`heatmaps` must have shape \(N, H, W\), but got \(4, 20\)\."):
        lung_focus(np.ones((4, 20)), np.ones((4, 20)))


def _trained_focus(root: Path, marker: str | None) -> tuple[float, float, float]:
    spec = SyntheticSpec(
        classes=("COVID", "Normal"), per_class=60, size=128, marker_class=marker, marker_size=0.2, seed=2
    )
    make_synthetic_dataset(root, spec)
    config = TrialConfig(
        "MobileNet_0.25",
        0.0,
        32,
        0.1,
        1e-3,
        0.0,
        "binary",
        image_size=128,
        max_epochs=10,
        patience=10,
        weights=str(WEIGHTS),
    )
    outcome = run_trial(config, TrialData(scan(root)))
    assert outcome.metrics is not None and outcome.metrics.accuracy >= 0.85, "both models must learn the task"
    assert outcome.focus is not None and outcome.focus.energy is not None and outcome.focus.ratio is not None
    assert outcome.focus_source == "dataset"
    assert outcome.hidden_lungs_auc is not None
    return outcome.focus.energy, outcome.focus.ratio, outcome.hidden_lungs_auc


@pytest.mark.slow
def test_a_corner_marker_shortcut_shows_as_low_lung_focus_and_survives_hidden_lungs(tmp_path: Path) -> None:
    clean_energy, clean_ratio, clean_hidden = _trained_focus(tmp_path / "clean", None)
    marked_energy, marked_ratio, marked_hidden = _trained_focus(tmp_path / "marked", "COVID")
    assert clean_ratio > 1.25, "a model that reads the lungs beats the flat-map baseline"
    assert marked_ratio < clean_ratio - 0.3
    assert marked_energy < clean_energy - 0.05
    # With the lungs hidden, only the marker model can still tell COVID (0.5: chance).
    assert marked_hidden > 0.85 and clean_hidden < 0.7, (clean_hidden, marked_hidden)

"""Training with a penalty on Grad-CAM energy outside the lungs."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from cxrdata import make_feature_dataset, scan
from search._trial import TrialData, run_trial
from search.features import find_boundary
from search.gradcam import class_activation, signed_cam
from search.model import build_model, set_freeze_depth
from search.space import TrialConfig
from search.train import FocusTraining, outside_share
from tests.conftest import WEIGHTS

LEFT = np.zeros((1, 4, 4, 1), np.float32)
LEFT[:, :, :2] = 1  # the "lungs": the left half of a 4x4 image


def _share(cam: list[list[float]], lungs: np.ndarray = LEFT) -> float:
    """outside_share of one heatmap, given as the feature map of one channel with gradient 1."""
    features = np.asarray(cam, np.float32)[None, ..., None]
    return float(outside_share(tf.constant(features), tf.ones_like(features), tf.constant(lungs))[0])


@pytest.mark.parametrize(
    ("cam", "share"),
    [
        ([[1, 1, 0, 0]] * 4, 0.0),  # all evidence inside
        ([[0, 0, 1, 1]] * 4, 1.0),  # all outside
        ([[1, 1, 1, 1]] * 4, 0.5),  # flat: the lungs' share of the image
        ([[0, 0, 0, 0]] * 4, 0.0),  # blank: no evidence, no penalty
        # evidence against COVID outside the lungs: the heatmap hides it, the magnitude does not
        ([[2, 2, -1, -1]] * 4, (0 + 1 / 3) / 2),
        ([[-2, -2, 1, 1]] * 4, (1 + 1 / 3) / 2),  # the positive part outside, the bulk inside
    ],
)
def test_outside_share_is_the_heatmap_energy_outside_the_lungs(cam: list[list[float]], share: float) -> None:
    assert _share(cam) == pytest.approx(share)


def test_outside_share_averages_the_lungs_into_the_feature_maps_cells() -> None:
    lungs = np.zeros((1, 8, 8, 1), np.float32)
    lungs[:, :, :3] = 1  # 3 of 8 columns: the second 2x2 cell of each row is half lung
    features = np.ones((1, 4, 4, 1), np.float32)
    share = float(outside_share(tf.constant(features), tf.ones_like(features), tf.constant(lungs))[0])
    assert share == pytest.approx(1 - 3 / 8)


def _shortcut_problem(n: int = 256) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Feature maps with a faint signal inside the lungs (channel 0, left half) and a strong
    one outside (channel 1, right half): the shortcut cross-entropy alone prefers."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, n)
    features = rng.normal(0, 1, (n, 4, 4, 2)).astype(np.float32)
    features[:, :, :2, 0] += 1.0 * labels[:, None, None]
    features[:, :, 2:, 1] += 3.0 * labels[:, None, None]
    features = np.maximum(features, 0)  # post-ReLU activations, as a backbone's last map
    lungs = np.repeat(LEFT, n, axis=0)
    return features, labels, lungs


def _head() -> tuple[keras.Model, keras.KerasTensor, keras.KerasTensor, keras.KerasTensor]:
    inputs = keras.Input((4, 4, 2))
    x = keras.layers.GlobalAveragePooling2D()(inputs)
    x = keras.layers.Dense(8, activation="relu")(x)
    logits = keras.layers.Dense(2)(x)
    probabilities = keras.layers.Activation("softmax")(logits)
    return keras.Model(inputs, probabilities), inputs, logits, probabilities


def _outside_after_training(weight: float) -> tuple[float, float]:
    keras.utils.set_random_seed(0)
    features, labels, lungs = _shortcut_problem()
    model, inputs, logits, probabilities = _head()
    trainer = FocusTraining(inputs, inputs, logits, probabilities, weight, class_index=1)
    trainer.compile(keras.optimizers.Adam(3e-2), keras.losses.SparseCategoricalCrossentropy(), metrics=["accuracy"])
    data = tf.data.Dataset.from_tensor_slices((features, labels, lungs)).batch(32)
    history = trainer.fit(data, epochs=15, verbose=0)
    assert "focus_penalty" in history.history and "loss" in history.history
    probe = keras.Model(inputs, logits)
    with tf.GradientTape() as tape:
        x = tf.constant(features)
        tape.watch(x)
        score = tf.reduce_sum(probe(x)[:, 1])
    share = outside_share(x, tape.gradient(score, x), tf.constant(lungs))
    accuracy = float(np.mean(model.predict(features, verbose=0).argmax(1) == labels))
    return float(tf.reduce_mean(share)), accuracy


@pytest.mark.slow
def test_the_penalty_moves_the_evidence_from_the_shortcut_into_the_lungs() -> None:
    plain, _ = _outside_after_training(0.0)
    focused, accuracy = _outside_after_training(5.0)
    assert plain > 0.6, "without the penalty the model reads the strong signal outside the lungs"
    assert focused < plain - 0.3, f"the penalty must move the evidence inside (outside share {plain} -> {focused})"
    assert accuracy > 0.7, "and the model still learns from what is inside"


def test_feature_batches_carry_each_entrys_mask_in_the_same_order() -> None:
    features = np.arange(10, dtype=np.float32).reshape(10, 1)
    masks = np.arange(10, dtype=np.uint8).reshape(10, 1, 1, 1) % 2
    labels = np.arange(10) % 3
    data = make_feature_dataset([features], np.ones(10, bool), np.arange(10), labels, batch_size=4, shuffle=True,
                                masks=masks)  # fmt: skip
    seen = [(x.numpy()[:, 0], y.numpy(), m.numpy()[:, 0, 0, 0]) for x, y, m in data]
    rows = np.concatenate([x for x, _, _ in seen]).astype(int)
    assert sorted(rows) == list(range(10))
    np.testing.assert_array_equal(np.concatenate([y for _, y, _ in seen]), labels[rows])
    np.testing.assert_array_equal(np.concatenate([m for _, _, m in seen]), rows % 2)


def test_keeping_the_gradcam_layer_stops_the_boundary_before_the_pooling() -> None:
    keras.backend.clear_session()
    config = TrialConfig("MobileNet_0.25", 1.0, 16, 0.2, 3e-3, 0.0, "three", image_size=64, weights="none")
    built = build_model(config, 3)
    set_freeze_depth(built, 1.0)
    pooled, kept = find_boundary(built.model), find_boundary(built.model, keep=built.gradcam_layer)
    assert pooled is not None and pooled.names == ("head_pool",)
    assert kept is not None and kept.names == (built.gradcam_layer,)
    assert kept.floats_per_image() == pooled.floats_per_image() * 4, "the 2x2 map, unpooled"


@pytest.mark.slow
@pytest.mark.parametrize(("region", "augment"), [("full", 0.0), ("lung_crop", 0.0), ("full", 0.5)])
def test_a_focus_weighted_trial_trains_on_the_unpooled_map_and_measures_as_usual(
    tiny: Path, tmp_path: Path, region: str, augment: float
) -> None:
    config = TrialConfig(
        "MobileNet_0.25", 1.0, 16, 0.1, 3e-3, augment, "three", input_region=region, focus_weight=2.0,
        image_size=64, max_epochs=2, weights=str(WEIGHTS),
    )  # fmt: skip
    data = TrialData(scan(tiny), cache_dir=tmp_path / "cache")
    outcome = run_trial(config, data)
    assert outcome.metrics is not None and outcome.focus is not None
    # Without augmentation the frozen backbone's 2x2 map is cached; with it, every epoch sees images.
    assert outcome.routes == (["features:1024"] if augment == 0 else ["images"])
    assert len(outcome.fit.history) == 2
    assert all(np.isfinite(r.loss) and np.isfinite(r.val_loss) for r in outcome.fit.history)


def test_the_lungs_a_focused_trial_trains_on_are_the_regions_and_all_ones_where_unknown(tiny: Path) -> None:
    data = TrialData(scan(tiny))
    full = TrialConfig("MobileNet_0.25", 1.0, 16, 0.1, 3e-3, 0.0, "three", image_size=32, focus_weight=1.0)
    crop = TrialConfig("MobileNet_0.25", 1.0, 16, 0.1, 3e-3, 0.0, "three", image_size=32, focus_weight=1.0,
                       input_region="lung_crop")  # fmt: skip
    masks, available, _ = data.lung_masks(32, 0.0)
    lungs = data.input_lungs(full)
    assert lungs.shape == (len(available), 32, 32, 1) and set(np.unique(lungs)) <= {0, 1}
    np.testing.assert_array_equal(lungs[available, ..., 0], masks[available])
    assert (lungs[~available] == 1).all(), "no mask: no preference"
    cropped = data.input_lungs(crop)
    np.testing.assert_array_equal(cropped[available], np.asarray(data.inputs(crop).masks)[available] > 0)


def test_a_focus_weight_without_lungs_is_one_sentence(tiny: Path) -> None:
    from search._feed import TrialFeed

    config = TrialConfig("MobileNet_0.25", 1.0, 16, 0.1, 3e-3, 0.0, "three", image_size=32, focus_weight=1.0,
                         weights="none")  # fmt: skip
    data = TrialData(scan(tiny))
    built = build_model(config, 3)
    feed = TrialFeed(built, config, data.split("three"), data.inputs(config), "x", None, None, lungs=None)
    with pytest.raises(ValueError, match=r"^`focus_weight > 0` needs the lungs of every training image, but got "
                                         r"focus_weight=1.0 and no lung masks.$"):  # fmt: skip
        feed(1.0)


def test_the_penalty_reads_the_map_grad_cam_draws() -> None:
    """The positive part of the penalty's map is class_activation's heatmap on a real model."""
    keras.backend.clear_session()
    config = TrialConfig("MobileNet_0.25", 1.0, 16, 0.0, 3e-3, 0.0, "three", image_size=96, weights="none")
    built = build_model(config, 3)
    images = np.random.default_rng(1).uniform(0, 255, (3, 96, 96, 3)).astype(np.float32)
    drawn = class_activation(built.model, built.gradcam_layer, images, 0)
    probe = keras.Model(built.model.inputs, [built.model.get_layer(built.gradcam_layer).output,
                                             built.model.get_layer("head_logits").output])  # fmt: skip
    with tf.GradientTape() as tape:
        features, logits = probe(tf.constant(images))
        score = tf.reduce_sum(logits[:, 0])
    cam = signed_cam(features, tape.gradient(score, features)).numpy()
    assert cam.shape == drawn.shape == (3, 3, 3)
    np.testing.assert_allclose(np.maximum(cam, 0), drawn, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize(
    ("card", "says"),
    [
        ({"config": {"focus_weight": 2.0}}, "cross-entropy plus 2 x the share of the COVID Grad-CAM evidence outside"),
        ({"config": {"focus_weight": 0.0}}, ""),
        ({"config": {}}, ""),  # a model from before the penalty existed
        ({"config": None}, ""),  # an ensemble: its members' configs are listed apart
    ],
)
def test_the_card_says_when_a_model_was_taught_where_to_look(card: dict[str, object], says: str) -> None:
    from search.export._card import _focus_training_text

    text = _focus_training_text(card)
    assert (says in text) if says else text == ""

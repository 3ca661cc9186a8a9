from __future__ import annotations

import keras
import pytest

from search.model import HEAD_LAYERS, backbone_layers, build_model, set_freeze_depth
from search.space import TrialConfig


def _config(freeze: float) -> TrialConfig:
    return TrialConfig("MobileNet_0.25", freeze, 16, 0.2, 1e-3, 0.0, "three", image_size=32, weights="none")


@pytest.mark.parametrize("freeze", [0.0, 0.25, 0.5, 0.9, 1.0])
def test_freeze_depth_freezes_what_it_says(freeze: float) -> None:
    built = build_model(_config(freeze), 3)
    layers = backbone_layers(built.model, built.backbone_names)
    frozen = round(freeze * len(layers))
    for index, layer in enumerate(layers):
        # Random weights: BatchNorm trains like its neighbours (pretrained: see the test below).
        assert layer.trainable == (index >= frozen), layer.name
    for name in HEAD_LAYERS:
        assert built.model.get_layer(name).trainable
    keras.backend.clear_session()


def test_pretrained_batchnorm_stays_frozen_in_inference_mode() -> None:
    from tests.conftest import WEIGHTS

    config = TrialConfig("MobileNet_0.25", 0.0, 16, 0.2, 1e-3, 0.0, "three", image_size=32, weights=str(WEIGHTS))
    built = build_model(config, 3)
    layers = backbone_layers(built.model, built.backbone_names)
    norms = [layer for layer in layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert norms and not any(layer.trainable for layer in norms)
    assert all(
        layer.trainable for layer in layers if not isinstance(layer, keras.layers.BatchNormalization) and layer.weights
    )


def test_frozen_backbone_trains_only_the_head() -> None:
    built = build_model(_config(1.0), 3)
    trainable = {w.path.split("/")[0] for w in built.model.trainable_weights}
    assert trainable == {"head_dense", "head_logits"}


def test_refreezing_changes_the_trainable_set() -> None:
    built = build_model(_config(1.0), 3)
    before = len(built.model.trainable_weights)
    assert set_freeze_depth(built, 0.5) == round(0.5 * len(built.backbone_names))
    assert len(built.model.trainable_weights) > before


def test_head_has_logits_before_softmax() -> None:
    built = build_model(_config(1.0), 4)
    assert built.model.get_layer("head_logits").get_config()["activation"] == "linear"
    assert built.model.output.shape[-1] == 4

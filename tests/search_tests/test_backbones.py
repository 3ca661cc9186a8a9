"""One contract test over every registered backbone, plus weights resolution."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

from search import SearchError
from search.backbones import BACKBONES, get_backbone, resolve_weights
from search.model import build_model
from search.space import TrialConfig
from tests.conftest import WEIGHTS

_KERAS_PREPROCESS = {
    "vgg": keras.applications.vgg16.preprocess_input,
    "densenet": keras.applications.densenet.preprocess_input,
    "resnet_v2": keras.applications.resnet_v2.preprocess_input,
}


def _config(name: str, size: int, weights: str = "none", freeze: float = 1.0) -> TrialConfig:
    return TrialConfig(
        backbone=name,
        freeze_depth=freeze,
        head_width=8,
        dropout=0.1,
        learning_rate=1e-3,
        augment_strength=0.0,
        scheme="three",
        image_size=size,
        weights=weights,
    )


# Over about 5 s each to build and run on 2 CPU cores; the others keep one of each family in the fast tier.
HEAVY = {"ResNet101V2", "ResNet152V2", "InceptionV3", "InceptionResNetV2", "DenseNet121", "DenseNet201",
         "NASNetMobile", "NASNetLarge", "EfficientNetB0"}  # fmt: skip


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in HEAVY else n for n in BACKBONES])
def test_every_backbone_builds_flat_with_its_gradcam_layer(name: str) -> None:
    spec = get_backbone(name)
    size = max(spec.min_size, 32)
    built = build_model(_config(name, size), num_classes=3)
    model = built.model
    assert not any(isinstance(layer, keras.Model) for layer in model.layers), "the model must be flat"
    target = model.get_layer(built.gradcam_layer)
    assert len(target.output.shape) == 4, "Grad-CAM needs a spatial feature map"
    assert model.get_layer("head_logits").output.shape[-1] == 3
    out = model.predict(np.random.default_rng(0).uniform(0, 255, (2, size, size, 3)).astype("float32"), verbose=0)
    assert out.shape == (2, 3)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-5)
    keras.backend.clear_session()


@pytest.mark.parametrize("family", sorted(_KERAS_PREPROCESS))
def test_preprocessing_inside_the_model_matches_keras(family: str) -> None:
    name = next(n for n, s in BACKBONES.items() if s.family == family)
    built = build_model(_config(name, 32), num_classes=2)
    names = [layer.name for layer in built.model.layers if layer.name.startswith("preprocess_")]
    x = np.random.default_rng(1).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    inner = keras.Model(built.model.input, built.model.get_layer(names[-1]).output)
    np.testing.assert_allclose(inner.predict(x, verbose=0), _KERAS_PREPROCESS[family](x.copy()), rtol=1e-5, atol=1e-4)


def test_tf_mode_scales_to_minus_one_one() -> None:
    built = build_model(_config("MobileNetV2", 32), num_classes=2)
    inner = keras.Model(built.model.input, built.model.get_layer("preprocess_scale").output)
    out = inner.predict(np.array([[[[0.0, 127.5, 255.0]]]] * 1, dtype="float32").repeat(32, 1).repeat(32, 2), verbose=0)
    np.testing.assert_allclose(out[0, 0, 0], [-1.0, 0.0, 1.0], atol=1e-6)


def test_unknown_backbone_suggests_the_nearest() -> None:
    with pytest.raises(SearchError) as info:
        get_backbone("DenseNet12")
    assert str(info.value).startswith(
        "`backbone` must be a registered backbone, but got 'DenseNet12'. Did you mean 'DenseNet121' or 'DenseNet201'"
    )


def test_missing_weight_file_names_it_and_the_ways_out(tmp_path: Path) -> None:
    with pytest.raises(SearchError) as info:
        resolve_weights(get_backbone("ResNet50V2"), str(tmp_path), 128)
    assert str(info.value) == (
        f"ImageNet weights for ResNet50V2 need the file 'resnet50v2_weights_tf_dim_ordering_tf_kernels_notop.h5' in "
        f"'{tmp_path.resolve()}', but it is not there: copy that file (from a machine with internet, ~/.keras/models) "
        f"into the folder, or use --weights none for random initialisation."
    )


def test_weights_option_must_be_known_or_a_folder(tmp_path: Path) -> None:
    with pytest.raises(SearchError, match=r"`--weights` must be 'imagenet', 'none' or an existing folder"):
        resolve_weights(get_backbone("VGG16"), str(tmp_path / "nope"), 128)


@pytest.mark.parametrize(
    ("name", "size", "expected"),
    [
        pytest.param(
            "DenseNet121", 64, "densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5", marks=pytest.mark.slow
        ),
        ("MobileNetV2", 128, "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_160_no_top.h5"),
        ("MobileNetV2_0.35", 96, "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_224_no_top.h5"),
        ("MobileNet_0.25", 64, "mobilenet_2_5_224_tf_no_top.h5"),
    ],
)
def test_shared_weights_load_into_the_flat_model(name: str, size: int, expected: str) -> None:
    path = resolve_weights(get_backbone(name), str(WEIGHTS), size)
    assert path is not None and Path(path).name == expected
    pretrained = build_model(_config(name, size, weights=str(WEIGHTS)), num_classes=3)
    again = build_model(_config(name, size, weights=str(WEIGHTS)), num_classes=3)
    random = build_model(_config(name, size), num_classes=3)
    first_conv = pretrained.backbone_names.index(
        next(layer.name for layer in pretrained.model.layers if isinstance(layer, keras.layers.Conv2D))
    )
    layer = pretrained.backbone_names[first_conv]
    kernel = pretrained.model.get_layer(layer).get_weights()[0]
    np.testing.assert_array_equal(kernel, again.model.get_layer(layer).get_weights()[0])
    assert not np.allclose(kernel, random.model.get_layer(layer).get_weights()[0])
    keras.backend.clear_session()


def test_imagenet_weights_that_cannot_be_downloaded_get_one_sentence() -> None:
    # These machines have no internet, so Keras' download fails: the message names the file and the ways out.
    from search.backbones._weights import keras_cache_dir

    spec = get_backbone("MobileNet_0.25")
    assert not (keras_cache_dir() / spec.weight_files[0]).exists(), "the test needs an empty Keras cache"
    with pytest.raises(SearchError) as info:
        build_model(_config("MobileNet_0.25", 32, weights="imagenet"), num_classes=2)
    message = str(info.value)
    assert message.startswith("ImageNet weights for MobileNet_0.25 could not be downloaded (")
    assert f"the file '{spec.weight_files[0]}' is not in" in message
    assert message.endswith(
        "put it in a folder and pass --weights FOLDER, or use --weights none for random initialisation."
    )

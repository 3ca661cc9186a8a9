"""Build one trial's model: preprocessing, backbone and head in one flat Keras graph.

The backbone is built on our own input tensor, so its layers become layers of the trial's
model rather than a nested sub-model: Grad-CAM can then read any backbone layer directly.
"""

from __future__ import annotations

from typing import Any

import keras

from search._errors import SearchError
from search.backbones import IMAGENET, BackboneSpec, get_backbone, missing_download_message, resolve_weights
from search.space import TrialConfig

__all__ = ["HEAD_LAYERS", "BuiltModel", "backbone_layers", "build_model", "set_freeze_depth"]

HEAD_LAYERS = ("head_pool", "head_dense", "head_dropout", "head_logits", "probabilities")
_PREPROCESS_PREFIX = "preprocess_"
_IMAGENET_MEAN_RGB = (0.485, 0.456, 0.406)
_IMAGENET_STD_RGB = (0.229, 0.224, 0.225)
_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)


def _caffe(x: Any) -> Any:
    """RGB -> BGR, then subtract the ImageNet mean, with weightless standard layers only.

    Keras loads legacy ``.h5`` backbone weights by the order of layers that have weights, and
    our preprocessing sits inside the backbone's graph, so it must add none (a fixed 1x1
    convolution would). Cropping the channel axis three ways and concatenating in reverse
    order is the swap, and the model still loads in safe mode without custom code.
    """
    size = x.shape[1]
    cube = keras.layers.Reshape((size, size, 3, 1), name=f"{_PREPROCESS_PREFIX}to_cube")(x)
    channels = [
        keras.layers.Cropping3D(((0, 0), (0, 0), (c, 2 - c)), name=f"{_PREPROCESS_PREFIX}channel{c}")(cube)
        for c in (2, 1, 0)
    ]
    bgr = keras.layers.Concatenate(axis=3, name=f"{_PREPROCESS_PREFIX}bgr")(channels)
    bgr = keras.layers.Reshape((size, size, 3), name=f"{_PREPROCESS_PREFIX}bgr_image")(bgr)
    return keras.layers.Normalization(
        mean=list(_CAFFE_MEAN_BGR), variance=[1.0, 1.0, 1.0], name=f"{_PREPROCESS_PREFIX}norm"
    )(bgr)


def _preprocess(spec: BackboneSpec, x: Any) -> Any:
    """The backbone's ImageNet preprocessing as standard, serialisable layers."""
    if spec.preprocess == "tf":
        return keras.layers.Rescaling(1 / 127.5, offset=-1.0, name=f"{_PREPROCESS_PREFIX}scale")(x)
    if spec.preprocess == "torch":
        x = keras.layers.Rescaling(1 / 255.0, name=f"{_PREPROCESS_PREFIX}scale")(x)
        return keras.layers.Normalization(
            mean=list(_IMAGENET_MEAN_RGB), variance=[s * s for s in _IMAGENET_STD_RGB], name=f"{_PREPROCESS_PREFIX}norm"
        )(x)
    if spec.preprocess == "caffe":
        return _caffe(x)
    return x


class BuiltModel:
    """The trial's model and what later steps need to know about it."""

    def __init__(
        self, model: keras.Model, spec: BackboneSpec, backbone_names: list[str], gradcam_layer: str, pretrained: bool
    ) -> None:
        self.model = model
        self.spec = spec
        self.backbone_names = backbone_names
        self.gradcam_layer = gradcam_layer
        self.pretrained = pretrained


def backbone_layers(model: keras.Model, names: list[str]) -> list[keras.Layer]:
    wanted = set(names)
    return [layer for layer in model.layers if layer.name in wanted]


def set_freeze_depth(built: BuiltModel, depth: float) -> int:
    """Freeze the first ``depth`` fraction of backbone layers; return how many are frozen.

    With pretrained weights every BatchNormalization layer is frozen, which in Keras 3 also
    keeps it in inference mode: small medical batches would otherwise overwrite the ImageNet
    statistics. A randomly initialised backbone has no statistics worth keeping, so there
    BatchNormalization trains with the layers around it.
    """
    layers = backbone_layers(built.model, built.backbone_names)
    frozen = round(depth * len(layers))
    for index, layer in enumerate(layers):
        keep_bn = built.pretrained and isinstance(layer, keras.layers.BatchNormalization)
        layer.trainable = index >= frozen and not keep_bn
    return frozen


def _backbone(spec: BackboneSpec, x: Any, weights: str | None) -> keras.Model:
    try:
        return spec.build(x, weights)
    except SearchError:
        raise
    except Exception as exc:  # Keras raises a bare Exception when a download fails
        if (weights == IMAGENET and "fetch" in str(exc).lower()) or isinstance(exc, OSError):
            raise SearchError(missing_download_message(spec, exc)) from exc
        raise


def build_model(config: TrialConfig, num_classes: int) -> BuiltModel:
    """The flat model of one trial, with the backbone frozen to ``config.freeze_depth``."""
    spec = get_backbone(config.backbone)
    weights = resolve_weights(spec, config.weights, config.image_size)
    inputs = keras.Input((config.image_size, config.image_size, 3), name="image")
    x = _preprocess(spec, inputs)
    backbone = _backbone(spec, x, weights)
    names = [layer.name for layer in backbone.layers if not isinstance(layer, keras.layers.InputLayer)]
    names = [n for n in names if not n.startswith(_PREPROCESS_PREFIX)]
    gradcam = spec.gradcam_layer or names[-1]

    x = keras.layers.GlobalAveragePooling2D(name="head_pool")(backbone.output)
    x = keras.layers.Dense(config.head_width, activation="relu", name="head_dense")(x)
    x = keras.layers.Dropout(config.dropout, seed=config.seed, name="head_dropout")(x)
    # Logits apart from the softmax: Grad-CAM differentiates the class score before softmax.
    logits = keras.layers.Dense(num_classes, name="head_logits")(x)
    outputs = keras.layers.Activation("softmax", dtype="float32", name="probabilities")(logits)
    model = keras.Model(inputs, outputs, name=f"cxr_{spec.name.lower().replace('.', '_')}")
    built = BuiltModel(model, spec, names, gradcam, pretrained=weights is not None)
    set_freeze_depth(built, config.freeze_depth)
    return built

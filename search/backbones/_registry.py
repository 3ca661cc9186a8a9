"""The backbone registry: every ImageNet backbone the search may use, one entry each.

An entry knows how to build the backbone on a given input tensor, how its ImageNet
preprocessing is expressed with serialisable layers (no ``Lambda``, so exported models load
in Keras' safe mode), its default input size, the layer Grad-CAM reads, and the file names
Keras gives its no-top weights.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cxrdata import did_you_mean
from search._errors import SearchError

__all__ = ["BACKBONES", "BackboneSpec", "get_backbone"]


@dataclass(frozen=True)
class BackboneSpec:
    """One registered backbone.

    ``preprocess`` is Keras' preprocessing mode for the family: ``"tf"`` (scale to [-1, 1]),
    ``"torch"`` (scale to [0, 1], then ImageNet mean/std), ``"caffe"`` (RGB to BGR, subtract the
    ImageNet mean) or ``"none"`` (the model rescales itself, as EfficientNet does).
    ``weight_files`` are the Keras file names of the no-top ImageNet weights, best first; a
    ``{size}`` in a name stands for the input size the file was trained at.
    """

    name: str
    constructor: str  # name in keras.applications, resolved at build time (no import cost here)
    preprocess: str
    default_size: int
    min_size: int
    weight_files: tuple[str, ...]
    gradcam_layer: str | None = None  # None: the backbone's last layer
    kwargs: dict[str, Any] = field(default_factory=dict)
    family: str = ""

    def build(self, inputs: Any, weights: str | None) -> Any:
        """The backbone as a Keras functional model whose input is ``inputs``."""
        import keras

        build = getattr(keras.applications, self.constructor)
        return build(include_top=False, weights=weights, input_tensor=inputs, **self.kwargs)


def _notop(stem: str) -> tuple[str, ...]:
    return (f"{stem}_weights_tf_dim_ordering_tf_kernels_notop.h5",)


_MOBILENET_V2_SIZES = (224, 192, 160, 128, 96)


def _mobilenet_v2(alpha: str) -> tuple[str, ...]:
    return tuple(f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{alpha}_{s}_no_top.h5" for s in _MOBILENET_V2_SIZES)


def _mobilenet(alpha: str) -> tuple[str, ...]:
    return tuple(f"mobilenet_{alpha}_{s}_tf_no_top.h5" for s in (224, 192, 160, 128))


_ENTRIES = [
    BackboneSpec("VGG16", "VGG16", "caffe", 224, 32, _notop("vgg16"), gradcam_layer="block5_conv3", family="vgg"),
    BackboneSpec("VGG19", "VGG19", "caffe", 224, 32, _notop("vgg19"), gradcam_layer="block5_conv4", family="vgg"),
    BackboneSpec("ResNet50V2", "ResNet50V2", "tf", 224, 32, _notop("resnet50v2"), family="resnet_v2"),
    BackboneSpec("ResNet101V2", "ResNet101V2", "tf", 224, 32, _notop("resnet101v2"), family="resnet_v2"),
    BackboneSpec("ResNet152V2", "ResNet152V2", "tf", 224, 32, _notop("resnet152v2"), family="resnet_v2"),
    BackboneSpec("InceptionV3", "InceptionV3", "tf", 299, 75, _notop("inception_v3"), family="inception_v3"),
    BackboneSpec(
        "InceptionResNetV2",
        "InceptionResNetV2",
        "tf",
        299,
        75,
        _notop("inception_resnet_v2"),
        family="inception_resnet_v2",
    ),
    BackboneSpec("Xception", "Xception", "tf", 299, 71, _notop("xception"), family="xception"),
    BackboneSpec("MobileNetV2", "MobileNetV2", "tf", 224, 32, _mobilenet_v2("1.0"), kwargs={"alpha": 1.0}),
    BackboneSpec("MobileNetV2_0.35", "MobileNetV2", "tf", 224, 32, _mobilenet_v2("0.35"), kwargs={"alpha": 0.35}),
    BackboneSpec("DenseNet121", "DenseNet121", "torch", 224, 32, _notop("densenet121"), family="densenet"),
    BackboneSpec("DenseNet201", "DenseNet201", "torch", 224, 32, _notop("densenet201"), family="densenet"),
    BackboneSpec("NASNetMobile", "NASNetMobile", "tf", 224, 32, ("NASNet-mobile-no-top.h5",), family="nasnet"),
    BackboneSpec("NASNetLarge", "NASNetLarge", "tf", 331, 32, ("NASNet-large-no-top.h5",), family="nasnet"),
    BackboneSpec(
        "EfficientNetB0", "EfficientNetB0", "none", 224, 32, ("efficientnetb0_notop.h5",), family="efficientnet"
    ),
    BackboneSpec("MobileNet", "MobileNet", "tf", 224, 32, _mobilenet("1_0"), kwargs={"alpha": 1.0}),
    BackboneSpec("MobileNet_0.25", "MobileNet", "tf", 224, 32, _mobilenet("2_5"), kwargs={"alpha": 0.25}),
]

BACKBONES: dict[str, BackboneSpec] = {spec.name: spec for spec in _ENTRIES}


def get_backbone(name: str) -> BackboneSpec:
    """The registered backbone called ``name`` (exact), failing with the nearest names."""
    try:
        return BACKBONES[name]
    except KeyError:
        hint = did_you_mean(name, BACKBONES) or f" Known backbones: {', '.join(BACKBONES)}."
        raise SearchError(f"`backbone` must be a registered backbone, but got {name!r}.{hint}") from None

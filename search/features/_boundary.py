"""Where a model stops being a constant function of its input.

With a frozen prefix, inference-mode BatchNormalization and no augmentation, everything a
model computes before its first trainable layer is the same in every epoch. The *boundary*
is the set of tensors that cross from that constant part into the trainable part: computing
them once and training only the rest gives the same model as training the whole one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import keras

__all__ = ["Boundary", "find_boundary"]

# Layers that draw random numbers in training are never constant, whatever their weights.
_RANDOM_LAYERS: tuple[type, ...] = (
    keras.layers.Dropout,
    keras.layers.SpatialDropout1D,
    keras.layers.SpatialDropout2D,
    keras.layers.SpatialDropout3D,
    keras.layers.GaussianNoise,
    keras.layers.GaussianDropout,
    keras.layers.AlphaDropout,
)


@dataclass(frozen=True)
class Boundary:
    """The constant part of a model (``front``: image -> boundary tensors) and the rest (``tail``).

    Both share their layers with the full model, so training ``tail`` trains the full model.
    """

    front: keras.Model
    tail: keras.Model
    names: tuple[str, ...]  # the layers whose outputs are the boundary, in tail-input order
    # Those outputs as symbolic tensors of the full model's graph (``front.outputs`` are copies),
    # to build other models on the trainable side.
    tensors: tuple[Any, ...] = ()

    def floats_per_image(self) -> int:
        return sum(_size(t.shape[1:]) for t in self.front.outputs)


def _size(shape: tuple[Any, ...]) -> int:
    total = 1
    for dim in shape:
        total *= int(dim)
    return total


def _producers(layer: keras.Layer) -> list[keras.Layer]:
    node = layer._inbound_nodes[0]  # every layer of a trial's model is called exactly once
    return [t._keras_history.operation for t in node.input_tensors]


def _constant_layers(model: keras.Model, keep: str | None) -> set[str]:
    constant: set[str] = set()
    for layer in model.layers:  # topological order
        if isinstance(layer, keras.layers.InputLayer):
            constant.add(layer.name)
            continue
        if layer.trainable_weights or isinstance(layer, _RANDOM_LAYERS):
            continue
        producers = _producers(layer)
        if keep is not None and any(p.name == keep for p in producers):
            continue  # the kept layer's output must reach the trained side unpooled
        if all(p.name in constant for p in producers):
            constant.add(layer.name)
    return constant


def _learned(layer: keras.Layer) -> bool:
    """A layer with (frozen) learned weights; a Normalization's mean and variance do not count."""
    return bool(layer.weights) and not isinstance(layer, keras.layers.Normalization)


def find_boundary(model: keras.Model, keep: str | None = None) -> Boundary | None:
    """Split ``model`` at its current trainable flags; ``None`` when nothing before the first
    trainable layer is worth caching (only the input would cross the boundary).

    ``keep`` names a layer whose output the trained side must compute or receive as it is
    (Grad-CAM's layer, for a training penalty on the heatmap): the boundary is no later than it,
    so a parameter-free pooling after it is not folded into the cached part.
    """
    constant = _constant_layers(model, keep)
    crossing: dict[str, Any] = {}
    for layer in model.layers:
        if layer.name in constant:
            continue
        for tensor in layer._inbound_nodes[0].input_tensors:
            producer = tensor._keras_history.operation
            if producer.name in constant:
                # The tensor this layer reads, not ``producer.output``: where the backbone's
                # sub-model ends, Keras hands the head a copy of its output tensor.
                crossing.setdefault(producer.name, tensor)
    if not crossing or any(isinstance(model.get_layer(n), keras.layers.InputLayer) for n in crossing):
        return None
    if not any(_learned(model.get_layer(n)) for n in constant):
        return None  # only input scaling is constant: caching it would store images as floats
    names = tuple(crossing)
    tensors = [crossing[n] for n in names]
    front = keras.Model(model.inputs, tensors, name=f"{model.name}_front")
    tail = keras.Model(tensors, model.outputs, name=f"{model.name}_tail")
    return Boundary(front=front, tail=tail, names=names, tensors=tuple(tensors))

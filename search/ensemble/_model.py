"""One Keras model that averages its members' probabilities, and its Grad-CAM.

Each member is a trial's own flat model (its preprocessing inside), nested under the name
``member_<i>``; a member trained at another input size gets a ``Resizing`` layer in front.
Only standard layers (``Resizing``, ``Rescaling``, ``Add``), so the ensemble saves to one
``.keras`` file, loads in safe mode and converts to SavedModel and TFLite like a single model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["build_ensemble", "ensemble_gradcam", "member_name"]


def member_name(index: int) -> str:
    return f"member_{index}"


def build_ensemble(models: Sequence[Any], weights: Sequence[float], input_size: int) -> Any:
    """``sum(w_i * member_i(image))`` over members whose weights sum to 1; input ``input_size`` px RGB."""
    import keras

    if len(models) != len(weights) or not models:
        raise ValueError(f"An ensemble needs one weight per member, but got {len(models)} models and {len(weights)}.")
    if not np.isclose(sum(weights), 1.0):
        raise ValueError(f"Ensemble weights must sum to 1, but got {sum(weights):.6f}.")
    image = keras.Input((input_size, input_size, 3), name="image")
    outputs = []
    for i, (model, weight) in enumerate(zip(models, weights, strict=True)):
        model.name = member_name(i)  # loaded members all carry their backbone's name
        size = int(model.input_shape[1])
        x = image if size == input_size else keras.layers.Resizing(size, size, name=f"resize_{i}")(image)
        outputs.append(keras.layers.Rescaling(float(weight), name=f"weight_{i}")(model(x)))
    average = keras.layers.Add(name="probabilities")(outputs) if len(outputs) > 1 else outputs[0]
    return keras.Model(image, average, name="cxr_ensemble")


def ensemble_gradcam(
    model: Any, members: Sequence[tuple[str, float]], images: np.ndarray, class_index: int
) -> np.ndarray:
    """The members' Grad-CAM heatmaps, weighted by their ensemble weights, at the input size.

    ``members`` are ``(Grad-CAM layer, weight)`` in member order. Each member's map is taken on
    the image as that member sees it and resized back; the sum is scaled to a peak of 1 per
    image (an all-zero map still means no positive evidence).
    """
    import tensorflow as tf

    from search.gradcam import gradcam

    size = images.shape[1]
    total = np.zeros(images.shape[:3], dtype=np.float32)
    for i, (layer, weight) in enumerate(members):
        member = model.get_layer(member_name(i))
        own = int(member.input_shape[1])
        seen = images if own == size else tf.image.resize(images, (own, own), method="bilinear").numpy()
        heat = gradcam(member, layer, np.asarray(seen, dtype=np.float32), class_index)
        if own != size:
            heat = tf.image.resize(heat[..., None], (size, size), method="bilinear").numpy()[..., 0]
        total += weight * heat
    peak = total.max(axis=(1, 2), keepdims=True)
    return np.asarray(np.divide(total, peak, out=np.zeros_like(total), where=peak > 0))

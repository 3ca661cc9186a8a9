"""Grad-CAM on the flat model: the class score before softmax, at the backbone's last conv layer."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["LOGITS_LAYER", "class_activation", "gradcam", "gradcam_layer_of", "overlay", "signed_cam"]

LOGITS_LAYER = "head_logits"
_POOL_LAYER = "head_pool"


def gradcam_layer_of(model: Any, preferred: str | None = None) -> str:
    """The layer Grad-CAM reads: the registry's choice, else the backbone's last layer, which
    in the flat model is the layer right before the head's pooling."""
    if preferred is not None:
        return preferred
    names: list[str] = [layer.name for layer in model.layers]
    return names[names.index(_POOL_LAYER) - 1]


def signed_cam(features: Any, gradients: Any) -> Any:
    """Grad-CAM's map ``(N, h, w)`` before its ReLU: each channel weighted by its mean gradient.

    Shared by the heatmaps drawn here and the training penalty that reads them
    (:func:`search.train.outside_share`), so both are the same map.
    """
    import tensorflow as tf

    weights = tf.reduce_mean(tf.cast(gradients, tf.float32), axis=(1, 2), keepdims=True)
    return tf.reduce_sum(weights * tf.cast(features, tf.float32), axis=-1)


def class_activation(
    model: Any, layer_name: str, images: np.ndarray, class_index: int, batch_size: int = 32
) -> np.ndarray:
    """Grad-CAM at the feature map's own resolution ``(N, h, w)``, before resizing.

    Differentiates the logit (not the softmax probability, which saturates) with respect to the
    feature map of ``layer_name``, weights each channel by its mean gradient and keeps the
    positive part.
    """
    import keras
    import tensorflow as tf

    probe = keras.Model(model.inputs, [model.get_layer(layer_name).output, model.get_layer(LOGITS_LAYER).output])
    maps = []
    for start in range(0, len(images), batch_size):
        batch = tf.convert_to_tensor(images[start : start + batch_size], dtype=tf.float32)
        with tf.GradientTape() as tape:
            features, logits = probe(batch, training=False)
            score = logits[:, class_index]
        maps.append(tf.nn.relu(signed_cam(features, tape.gradient(score, features))).numpy())
    return np.concatenate(maps) if maps else np.zeros((0, 1, 1), dtype=np.float32)


def gradcam(model: Any, layer_name: str, images: np.ndarray, class_index: int, batch_size: int = 32) -> np.ndarray:
    """Heatmaps ``(N, H, W)`` in [0, 1] at the input size; an all-zero map means no positive evidence."""
    import tensorflow as tf

    cams = class_activation(model, layer_name, images, class_index, batch_size)
    resized = tf.image.resize(cams[..., None], images.shape[1:3], method="bilinear")[..., 0]
    peak = tf.reduce_max(resized, axis=(1, 2), keepdims=True)
    return np.asarray(tf.math.divide_no_nan(resized, peak).numpy(), dtype=np.float32)


def _jet(values: np.ndarray) -> np.ndarray:
    """The jet colour map (blue - cyan - yellow - red) without a plotting library."""
    v = np.clip(values, 0, 1)[..., None]
    r = np.clip(1.5 - np.abs(4 * v - 3), 0, 1)
    g = np.clip(1.5 - np.abs(4 * v - 2), 0, 1)
    b = np.clip(1.5 - np.abs(4 * v - 1), 0, 1)
    return np.concatenate([r, g, b], axis=-1)


def overlay(image: np.ndarray, heatmap: np.ndarray, alpha: float = 0.4) -> np.ndarray:
    """An RGB uint8 picture of the heatmap over the image."""
    base = image.astype(np.float32) / 255.0
    mixed = (1 - alpha) * base + alpha * _jet(heatmap)
    return (np.clip(mixed, 0, 1) * 255).astype(np.uint8)

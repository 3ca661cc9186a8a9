"""tf.data input pipelines over decoded image arrays, with one augmentation strength knob."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from cxrdata._images import ImageArrays

__all__ = ["AUGMENT_AT_FULL_STRENGTH", "check_strength", "make_dataset", "make_feature_dataset", "random_affine"]

# Strength 1 is the augmentation of the best-documented study on this database
# (rotation 10 degrees, shifts, shear and zoom of 0.1, horizontal flip); strength s scales
# every magnitude, and the flip probability, linearly.
AUGMENT_AT_FULL_STRENGTH = {"rotation_deg": 10.0, "shift": 0.1, "shear": 0.1, "zoom": 0.1, "flip_p": 0.5}


def check_strength(strength: float) -> float:
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"`0 <= augment_strength <= 1` must hold, but got augment_strength={strength}.")
    return float(strength)


def _uniform(seed: tf.Tensor, shape: tf.Tensor, offset: int, low: float, high: float) -> tf.Tensor:
    return tf.random.stateless_uniform(shape, seed=seed + offset, minval=low, maxval=high)


def random_affine(images: tf.Tensor, strength: float, seed: tf.Tensor) -> tf.Tensor:
    """Rotate, shift, shear, zoom and flip a batch with one resampling per image.

    Keras' ``RandomRotation``, ``RandomTranslation``, ``RandomShear``, ``RandomZoom`` and
    ``RandomFlip`` each resample the whole image (five interpolations, five blurs). Here the
    five random draws are composed into one affine matrix per image and applied once: the
    same distribution at a fraction of the cost (see ``bench/pipeline.py``). Every channel
    gets the same transform, so a lung mask stacked after the image stays aligned.
    """
    s = check_strength(strength)
    full = AUGMENT_AT_FULL_STRENGTH
    shape = tf.shape(images)
    height, width = tf.cast(shape[1], tf.float32), tf.cast(shape[2], tf.float32)
    size = shape[:1]
    angle = _uniform(seed, size, 1, -1.0, 1.0) * (full["rotation_deg"] * s * np.pi / 180.0)
    shear_x = _uniform(seed, size, 2, -1.0, 1.0) * full["shear"] * s
    shear_y = _uniform(seed, size, 3, -1.0, 1.0) * full["shear"] * s
    zoom = 1.0 + _uniform(seed, size, 4, -1.0, 1.0) * full["zoom"] * s
    shift_x = _uniform(seed, size, 5, -1.0, 1.0) * full["shift"] * s * width
    shift_y = _uniform(seed, size, 6, -1.0, 1.0) * full["shift"] * s * height
    flip = tf.where(_uniform(seed, size, 7, 0.0, 1.0) < full["flip_p"] * s, -1.0, 1.0)

    # Output pixel p (centred) reads input R(angle) @ Shear @ zoom @ Flip @ p + shift.
    cos, sin = tf.cos(angle), tf.sin(angle)
    a00 = (cos - sin * shear_y) * zoom * flip
    a01 = (cos * shear_x - sin) * zoom
    a10 = (sin + cos * shear_y) * zoom * flip
    a11 = (sin * shear_x + cos) * zoom
    cx, cy = (width - 1.0) / 2.0, (height - 1.0) / 2.0
    b0 = cx + shift_x - a00 * cx - a01 * cy
    b1 = cy + shift_y - a10 * cx - a11 * cy
    zeros = tf.zeros_like(a00)
    transforms = tf.stack([a00, a01, b0, a10, a11, b1, zeros, zeros], axis=1)
    # "nearest" fill, as Keras' old ImageDataGenerator did: no black corners to learn from.
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=images,
        transforms=transforms,
        output_shape=shape[1:3],
        fill_value=0.0,
        interpolation="BILINEAR",
        fill_mode="NEAREST",
    )


def _rows(array: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """``array[positions]``, read in file order: memory maps read fastest that way."""
    order = np.sort(positions)
    inverse = np.argsort(np.argsort(positions))
    return np.asarray(array[order])[inverse]


def _gather(arrays: ImageArrays, with_masks: bool) -> Any:
    def take(positions: np.ndarray) -> tuple[np.ndarray, ...]:
        images = _rows(arrays.images, positions)
        return (images, _rows(arrays.masks, positions)) if with_masks else (images,)

    return take


def _batches(indices: np.ndarray, labels: np.ndarray, batch_size: int, shuffle: bool, seed: int) -> tf.data.Dataset:
    """Batches of ``(entry indices, labels)``: the one place that decides the order of examples."""
    data = tf.data.Dataset.from_tensor_slices((indices, labels[indices]))
    if shuffle:
        data = data.shuffle(len(indices), seed=seed, reshuffle_each_iteration=True)
    return data.batch(batch_size)


def make_feature_dataset(
    features: Sequence[np.ndarray],
    valid: np.ndarray,
    indices: np.ndarray,
    labels: np.ndarray,
    *,
    batch_size: int = 32,
    shuffle: bool = False,
    seed: int = 0,
    masks: np.ndarray | None = None,
) -> tf.data.Dataset:
    """Like :func:`make_dataset`, but of precomputed per-entry arrays (``features[k][i]`` belongs
    to entry ``i``) instead of images, with no augmentation.

    Examples come in exactly the order ``make_dataset`` gives them for the same arguments, so
    a model trained on features sees the same batches as one trained on the images. With
    ``masks`` (``(N, S, S, 1)`` per entry) batches are ``(features, labels, masks)``, masks
    float32 in {0, 1}, as ``make_dataset(..., with_masks=True)`` gives them.
    """
    if batch_size < 1:
        raise ValueError(f"`batch_size >= 1` must hold, but got batch_size={batch_size}.")
    indices = np.asarray(indices, dtype=np.int64)
    indices = indices[valid[indices]]

    arrays = [*features, masks] if masks is not None else list(features)
    shapes = [tuple(a.shape[1:]) for a in arrays]

    def take(positions: np.ndarray) -> tuple[np.ndarray, ...]:
        return tuple(_rows(a, positions).astype(np.float32, copy=False) for a in arrays)

    def load(batch_indices: tf.Tensor, batch_labels: tf.Tensor) -> tuple[Any, ...]:
        loaded = tf.numpy_function(take, [batch_indices], [tf.float32] * len(arrays), stateful=False)
        tensors = [tf.ensure_shape(x, (None, *shape)) for x, shape in zip(loaded, shapes, strict=True)]
        inputs = tensors[: len(features)]
        x = inputs[0] if len(inputs) == 1 else tuple(inputs)
        return (x, batch_labels) if masks is None else (x, batch_labels, tensors[-1])

    data = _batches(indices, labels, batch_size, shuffle, seed)
    return data.map(load, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def make_dataset(
    arrays: ImageArrays,
    indices: np.ndarray,
    labels: np.ndarray,
    *,
    batch_size: int = 32,
    shuffle: bool = False,
    augment_strength: float = 0.0,
    seed: int = 0,
    with_masks: bool = False,
) -> tf.data.Dataset:
    """Batches of ``(images, labels)`` (or ``(images, labels, masks)``) for the given entries.

    Images are float32 in [0, 255] (each backbone's own preprocessing lives in the model),
    labels are the scheme's integer labels, masks are float32 in {0, 1}. Entries whose file
    no longer decodes are left out. Shuffling is seeded and differs every epoch.
    """
    if batch_size < 1:
        raise ValueError(f"`batch_size >= 1` must hold, but got batch_size={batch_size}.")
    indices = np.asarray(indices, dtype=np.int64)
    indices = indices[arrays.valid[indices]]
    strength = check_strength(augment_strength)
    size = arrays.image_size
    take = _gather(arrays, with_masks)
    out_types = (tf.uint8, tf.uint8) if with_masks else (tf.uint8,)

    data = _batches(indices, labels, batch_size, shuffle, seed)
    # One fresh augmentation seed per batch and per epoch, reproducible from ``seed``.
    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
    data = tf.data.Dataset.zip(data, seeds)

    def load(batch: tuple[tf.Tensor, tf.Tensor], batch_seed: tf.Tensor) -> tuple[tf.Tensor, ...]:
        batch_indices, batch_labels = batch
        loaded = tf.numpy_function(take, [batch_indices], out_types, stateful=False)
        images = tf.cast(tf.ensure_shape(loaded[0], (None, size, size, 3)), tf.float32)
        masks = tf.cast(tf.ensure_shape(loaded[1], (None, size, size, 1)), tf.float32) if with_masks else None
        if strength > 0:
            stacked = images if masks is None else tf.concat([images, masks * 255.0], axis=-1)
            stacked = random_affine(stacked, strength, batch_seed)
            images = stacked[..., :3]
            if masks is not None:
                masks = tf.cast(stacked[..., 3:] > 127.5, tf.float32)
        return (images, batch_labels) if masks is None else (images, batch_labels, masks)

    return data.map(load, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)

"""tf.data input pipelines over decoded image arrays, with one augmentation strength knob."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import tensorflow as tf

from cxrdata._images import ImageArrays

__all__ = ["AUGMENT_AT_FULL_STRENGTH", "make_augmenter", "make_dataset"]

# Strength 1 is the augmentation of the best-documented study on this database
# (rotation 10 degrees, shifts, shear and zoom of 0.1, horizontal flip); strength s scales
# every magnitude, and the flip probability, linearly.
AUGMENT_AT_FULL_STRENGTH = {"rotation_deg": 10.0, "shift": 0.1, "shear": 0.1, "zoom": 0.1, "flip_p": 0.5}


def check_strength(strength: float) -> float:
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"`0 <= augment_strength <= 1` must hold, but got augment_strength={strength}.")
    return float(strength)


class RandomFlipWithProbability(keras.layers.Layer):  # type: ignore[misc]
    """Horizontal flip with a set probability (Keras' ``RandomFlip`` always uses one half)."""

    def __init__(self, probability: float, seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.probability = probability
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs: Any, training: bool = True) -> Any:
        if not training or self.probability <= 0:
            return inputs
        batch = keras.ops.shape(inputs)[0]
        draw = keras.random.uniform((batch, 1, 1, 1), seed=self.seed_generator)
        return keras.ops.where(draw < self.probability, keras.ops.flip(inputs, axis=2), inputs)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "probability": self.probability}


def make_augmenter(strength: float, seed: int = 0) -> keras.Sequential | None:
    """The geometric augmentation at ``strength`` in [0, 1]; ``None`` at 0.

    It works on batches whose channels may carry a lung mask after the image: one random
    transform per sample is applied to all channels, so a mask stays aligned with its image.
    """
    s = check_strength(strength)
    if s == 0:
        return None
    full = AUGMENT_AT_FULL_STRENGTH
    # "nearest" fill, as Keras' old ImageDataGenerator did: no black corners to learn from.
    common = {"fill_mode": "nearest"}
    return keras.Sequential(
        [
            keras.layers.RandomRotation(full["rotation_deg"] * s / 360.0, seed=seed, **common),
            keras.layers.RandomTranslation(full["shift"] * s, full["shift"] * s, seed=seed + 1, **common),
            keras.layers.RandomShear(full["shear"] * s, full["shear"] * s, seed=seed + 2, **common),
            keras.layers.RandomZoom(full["zoom"] * s, full["zoom"] * s, seed=seed + 3, **common),
            RandomFlipWithProbability(full["flip_p"] * s, seed=seed + 4),
        ],
        name="augment",
    )


def _gather(arrays: ImageArrays, with_masks: bool) -> Any:
    def take(positions: np.ndarray) -> tuple[np.ndarray, ...]:
        order = np.sort(positions)  # memory maps read fastest in file order
        inverse = np.argsort(np.argsort(positions))
        images = np.asarray(arrays.images[order])[inverse]
        if not with_masks:
            return (images,)
        return images, np.asarray(arrays.masks[order])[inverse]

    return take


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
    augmenter = make_augmenter(augment_strength, seed)
    size = arrays.image_size
    take = _gather(arrays, with_masks)
    out_types = (tf.uint8, tf.uint8) if with_masks else (tf.uint8,)

    data = tf.data.Dataset.from_tensor_slices((indices, labels[indices]))
    if shuffle:
        data = data.shuffle(len(indices), seed=seed, reshuffle_each_iteration=True)
    data = data.batch(batch_size)

    def load(batch_indices: tf.Tensor, batch_labels: tf.Tensor) -> tuple[tf.Tensor, ...]:
        loaded = tf.numpy_function(take, [batch_indices], out_types, stateful=False)
        images = tf.cast(tf.ensure_shape(loaded[0], (None, size, size, 3)), tf.float32)
        masks = tf.cast(tf.ensure_shape(loaded[1], (None, size, size, 1)), tf.float32) if with_masks else None
        if augmenter is not None:
            stacked = images if masks is None else tf.concat([images, masks * 255.0], axis=-1)
            stacked = augmenter(stacked, training=True)
            images = stacked[..., :3]
            if masks is not None:
                masks = tf.cast(stacked[..., 3:] > 127.5, tf.float32)
        return (images, batch_labels) if masks is None else (images, batch_labels, masks)

    return data.map(load, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)

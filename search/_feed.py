"""What a trial's model trains on at each freeze depth: images, or cached activations.

With no augmentation, the frozen part of the model computes the same thing every epoch, so
its output (the *boundary* activations) is computed once per key and the trainable tail is
fitted on it. The tail shares its layers with the full model, so the trial still ends with
the full model, ready for Grad-CAM and export.

With ``focus_weight > 0`` each phase fits a :class:`search.train.FocusTraining` around that
model instead, and the training batches carry the lungs as the model sees them.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from cxrdata import ImageArrays, Split, make_dataset, make_feature_dataset
from search.features import Boundary, FeatureCache, compute_features, feature_key, find_boundary, limit_bytes
from search.gradcam import LOGITS_LAYER
from search.metrics import COVID_LABEL
from search.model import BuiltModel, set_freeze_depth
from search.space import TrialConfig
from search.train import FocusTraining

__all__ = ["FEATURE_BATCH", "ROUTE_FEATURES", "ROUTE_IMAGES", "TrialFeed"]

ROUTE_IMAGES = "images"
ROUTE_FEATURES = "features"
FEATURE_BATCH = 64  # the constant part runs in inference mode: batch size only changes speed


@dataclass
class TrialFeed:
    """A :data:`search.train.Feed` for one trial; remembers what each phase trained on."""

    built: BuiltModel
    config: TrialConfig
    split: Split
    arrays: ImageArrays  # every entry of the manifest at the trial's size
    dataset: str  # the manifest's fingerprint
    weights: str | None  # the resolved weights (file, "imagenet" or None)
    cache: FeatureCache | None  # None: activations live for this trial only
    use_features: bool = True
    # (N, S, S, 1) uint8: the lungs on the model's input, all ones where unknown (no preference).
    # Needed only with ``config.focus_weight > 0``.
    lungs: np.ndarray | None = None
    routes: list[str] = field(default_factory=list)
    last: tuple[keras.Model, tf.data.Dataset] | None = None  # what predicts the validation split

    @property
    def valid(self) -> np.ndarray:
        return np.asarray(self.arrays.valid, dtype=bool)

    @property
    def val_indices(self) -> np.ndarray:
        val = self.split.indices["val"]
        return np.asarray(val[self.valid[val]])

    def __call__(self, depth: float) -> tuple[keras.Model, tf.data.Dataset, tf.data.Dataset]:
        frozen = set_freeze_depth(self.built, depth)
        boundary = self._boundary()
        if boundary is None:
            model, train, val = self.built.model, *self._image_data()
            self.routes.append(ROUTE_IMAGES)
        else:
            features = self._features(boundary, frozen)
            model, train, val = boundary.tail, *self._feature_data(features)
            self.routes.append(f"{ROUTE_FEATURES}:{boundary.floats_per_image()}")
        self.last = model, val
        if self.focused:
            return self._focus_training(boundary), train, val
        return model, train, val

    @property
    def focused(self) -> bool:
        return self.config.focus_weight > 0

    def _focus_training(self, boundary: Boundary | None) -> FocusTraining:
        whole, layer = self.built.model, self.built.gradcam_layer
        inputs: Any = whole.inputs if boundary is None else list(boundary.tensors)
        if boundary is not None and layer in boundary.names:
            features = boundary.tensors[boundary.names.index(layer)]  # the boundary is Grad-CAM's map
        else:
            features = whole.get_layer(layer).output
        logits = whole.get_layer(LOGITS_LAYER).output
        return FocusTraining(inputs, features, logits, whole.outputs[0], self.config.focus_weight, COVID_LABEL)

    def _boundary(self) -> Boundary | None:
        if not self.use_features or self.config.augment_strength > 0:
            return None  # augmented images differ every epoch: nothing is constant
        # The penalty reads the Grad-CAM layer's map: cache no further than that layer.
        boundary = find_boundary(self.built.model, keep=self.built.gradcam_layer if self.focused else None)
        if boundary is None:
            return None
        if boundary.floats_per_image() * 4 * len(self.arrays.images) > limit_bytes():
            return None  # too big to keep: train on images as usual
        return boundary

    def _features(self, boundary: Boundary, frozen: int) -> list[np.ndarray]:
        if self.cache is None:
            return compute_features(boundary, self.arrays.images, FEATURE_BATCH)
        key = feature_key(
            dataset=self.dataset,
            image_size=self.config.image_size,
            crop=self.config.crop,
            backbone=self.built.spec.name,
            weights=self.weights,
            seed=self.config.seed,
            frozen=frozen,
            boundary=boundary,
        )
        return self.cache.load_or_compute(key, boundary, self.arrays.images, FEATURE_BATCH)

    def _image_data(self) -> tuple[tf.data.Dataset, tf.data.Dataset]:
        c, arrays = self.config, self.arrays
        labels = self.split.labels
        with_lungs = replace(arrays, masks=self._lungs()) if self.focused else arrays
        train = make_dataset(
            with_lungs, self.split.indices["train"], labels, batch_size=c.batch_size, shuffle=True,
            augment_strength=c.augment_strength, seed=c.seed, with_masks=self.focused,
        )  # fmt: skip
        return train, make_dataset(arrays, self.val_indices, labels, batch_size=c.batch_size)

    def _feature_data(self, features: list[np.ndarray]) -> tuple[tf.data.Dataset, tf.data.Dataset]:
        c, labels = self.config, self.split.labels
        train = make_feature_dataset(
            features, self.valid, self.split.indices["train"], labels, batch_size=c.batch_size, shuffle=True,
            seed=c.seed, masks=self._lungs() if self.focused else None,
        )  # fmt: skip
        val = make_feature_dataset(features, self.valid, self.val_indices, labels, batch_size=c.batch_size)
        return train, val

    def _lungs(self) -> np.ndarray:
        if self.lungs is None:
            raise ValueError(
                f"`focus_weight > 0` needs the lungs of every training image, but got focus_weight="
                f"{self.config.focus_weight} and no lung masks."
            )
        return self.lungs

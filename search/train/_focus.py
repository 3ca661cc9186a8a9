"""Training that prefers evidence inside the lungs: cross-entropy plus a Grad-CAM penalty.

The penalty is the share of the COVID score's Grad-CAM evidence that falls outside the lungs,
computed the way :func:`search.gradcam.class_activation` computes the heatmap (mean gradient
per channel, weighted sum; both signs, see :func:`outside_share`) at the layer Grad-CAM
reads, on every training batch. Its gradient is a second derivative (Grad-CAM is itself a
gradient), which TensorFlow takes through nested tapes. This is "right for the right reasons"
training (Ross et al., IJCAI 2017) on the quantity the leaderboard ranks by, so what it
optimises is what is measured: the model learns which channels carry evidence from the lungs.

Only training batches carry lung masks; validation stays plain cross-entropy, so validation
loss, pruning and early stopping mean the same thing with and without the penalty.
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

from search.gradcam import signed_cam

__all__ = ["FocusTraining", "outside_share"]


def outside_share(features: tf.Tensor, gradients: tf.Tensor, lungs: tf.Tensor) -> tf.Tensor:
    """Per image, the share of Grad-CAM evidence outside the lungs, in [0, 1].

    ``features`` and ``gradients`` are ``(N, h, w, C)``; ``lungs`` is ``(N, H, W, 1)`` in
    {0, 1} at the input's size, averaged down to the feature map's cells (a cell on the lungs'
    edge is partly lung).

    It is the mean of two shares of Grad-CAM's map (before its ReLU): that of its positive
    part, which the heatmap shows and lung focus measures, and that of its magnitude. The
    positive part alone is met by pushing the outside evidence below zero, where the heatmap
    hides it (a marker that argues *against* COVID is still a marker), or by blanking the map;
    the magnitude alone lets the little positive evidence left drift outside while the lungs
    carry mostly evidence against. A map of zeros has share 0.
    """
    cam = signed_cam(features, gradients)
    outside = 1.0 - tf.image.resize(tf.cast(lungs, tf.float32), tf.shape(cam)[1:3], method="area")[..., 0]
    shares = [
        tf.math.divide_no_nan(tf.reduce_sum(energy * outside, axis=(1, 2)), tf.reduce_sum(energy, axis=(1, 2)))
        for energy in (tf.nn.relu(cam), tf.abs(cam))
    ]
    return (shares[0] + shares[1]) / 2.0


class FocusTraining(keras.Model):  # type: ignore[misc]
    """Fits the graph from ``inputs`` to ``probabilities`` (its layers and weights, shared) on
    cross-entropy plus ``weight`` times the mean :func:`outside_share` of the class
    ``class_index`` Grad-CAM at ``features``, the map of the layer Grad-CAM reads.

    The four are symbolic tensors of one graph (a trial's model, or its trainable tail, whose
    inputs are the cached boundary tensors). Training data yields ``(inputs, labels, lungs)``;
    the logged ``loss`` is the cross-entropy alone (so it compares with ``val_loss``) and
    ``focus_penalty`` the mean outside share.
    """

    def __init__(
        self, inputs: Any, features: Any, logits: Any, probabilities: Any, weight: float, class_index: int
    ) -> None:
        super().__init__(name="focus_training")
        listed = list(inputs) if isinstance(inputs, list | tuple) else [inputs]
        # Grad-CAM's map may be an input itself (the cached boundary); a Keras model cannot
        # return its own input, so then the probe gives the logits alone and the map is read from the batch.
        self.map_input = next((k for k, t in enumerate(listed) if t is features), None)
        outputs = [logits, probabilities] if self.map_input is not None else [features, logits, probabilities]
        self.probe = keras.Model(inputs, outputs, name="focus_probe")
        self.weight = float(weight)
        self.class_index = int(class_index)
        self.penalty = keras.metrics.Mean(name="focus_penalty")

    def _forward(self, inputs: Any) -> tuple[Any, Any, Any]:
        """(Grad-CAM's map, logits, probabilities) in training mode."""
        if self.map_input is None:
            features, logits, proba = self.probe(inputs, training=True)
            return features, logits, proba
        logits, proba = self.probe(inputs, training=True)
        return (inputs if not isinstance(inputs, list | tuple) else inputs[self.map_input]), logits, proba

    def call(self, inputs: Any, training: bool = False) -> Any:
        return self.probe(inputs, training=training)[-1]

    def train_step(self, data: Any) -> dict[str, Any]:
        inputs, labels, lungs = data
        with tf.GradientTape() as tape:
            with tf.GradientTape() as inner:
                inner.watch(inputs)  # Grad-CAM's map may be an input itself (the cached boundary)
                features, logits, proba = self._forward(inputs)
                score = tf.reduce_sum(tf.cast(logits[:, self.class_index], tf.float32))
            gradients = inner.gradient(score, features)  # recorded by the outer tape: a second derivative
            penalty = tf.reduce_mean(outside_share(features, gradients, lungs))
            loss = self.compute_loss(x=inputs, y=labels, y_pred=proba, training=True)
            scaled = self.optimizer.scale_loss(loss + self.weight * penalty)
        variables = self.trainable_weights
        self.optimizer.apply_gradients(zip(tape.gradient(scaled, variables), variables, strict=True))
        # Keras' own train_step feeds its loss tracker the same way; ours gets the cross-entropy.
        self._loss_tracker.update_state(loss, sample_weight=tf.shape(labels)[0])
        self.penalty.update_state(penalty)
        return dict(self.compute_metrics(inputs, labels, proba))

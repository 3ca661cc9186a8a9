"""Grad-CAM on the flat trial model, and the lung focus it yields."""

from search.gradcam._focus import LungFocus, lung_focus
from search.gradcam._gradcam import (
    LOGITS_LAYER,
    class_activation,
    gradcam,
    gradcam_layer_of,
    overlay,
    signed_cam,
)

__all__ = [
    "LOGITS_LAYER",
    "LungFocus",
    "class_activation",
    "gradcam",
    "gradcam_layer_of",
    "lung_focus",
    "overlay",
    "signed_cam",
]

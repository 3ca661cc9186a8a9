"""Grad-CAM heatmaps on the flat trial model."""

from search.gradcam._gradcam import LOGITS_LAYER, gradcam, gradcam_layer_of, overlay

__all__ = ["LOGITS_LAYER", "gradcam", "gradcam_layer_of", "overlay"]

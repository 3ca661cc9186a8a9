"""The trial's flat Keras model: preprocessing, backbone, dense head."""

from search.model._build import HEAD_LAYERS, BuiltModel, backbone_layers, build_model, set_freeze_depth

__all__ = ["HEAD_LAYERS", "BuiltModel", "backbone_layers", "build_model", "set_freeze_depth"]

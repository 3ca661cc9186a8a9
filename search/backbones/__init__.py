"""Registered ImageNet backbones and where their weights come from."""

from search.backbones._registry import BACKBONES, BackboneSpec, get_backbone
from search.backbones._weights import IMAGENET, NONE, check_weights, missing_download_message, resolve_weights

__all__ = [
    "BACKBONES",
    "IMAGENET",
    "NONE",
    "BackboneSpec",
    "check_weights",
    "get_backbone",
    "missing_download_message",
    "resolve_weights",
]

"""Errors raised by :mod:`cxrdata`."""

from __future__ import annotations

__all__ = ["DatasetError", "ImageDecodeError"]


class DatasetError(ValueError):
    """The dataset cannot be used as given; the message names the value and the rule."""


class ImageDecodeError(ValueError):
    """One file could not be turned into an image; the message is the reason."""

"""Errors raised by :mod:`search`."""

from __future__ import annotations

__all__ = ["SearchError"]


class SearchError(ValueError):
    """A search cannot run as asked; the message names the value and the rule."""

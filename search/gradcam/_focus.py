"""Lung focus: how much of a model's Grad-CAM evidence falls inside the lungs."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["LungFocus", "lung_focus"]


@dataclass(frozen=True)
class LungFocus:
    """Lung focus over a set of images.

    ``energy`` is the mean share of heatmap energy inside the lung mask (``energy_std`` its
    spread); ``ratio`` divides each image's share by the lungs' share of the image (1.0 means
    no better than a flat map); ``pointing`` is the share of images whose heatmap peak lies in
    the lungs. Blank heatmaps (no positive evidence) are counted in ``blank`` and left out of
    the means; when every heatmap is blank the figures are ``None``, never NaN or perfect.
    """

    energy: float | None
    energy_std: float | None
    ratio: float | None
    pointing: float | None
    n: int
    blank: int


def lung_focus(heatmaps: np.ndarray, masks: np.ndarray) -> LungFocus:
    """Lung focus of ``(N, H, W)`` heatmaps against ``(N, H, W)`` (or ``(N, H, W, 1)``) lung masks."""
    maps = np.asarray(heatmaps, dtype=np.float64)
    lungs = np.asarray(masks).reshape(maps.shape) > 0.5
    if maps.ndim != 3:
        raise ValueError(f"`heatmaps` must have shape (N, H, W), but got {maps.shape}.")
    total = maps.sum(axis=(1, 2))
    area = lungs.mean(axis=(1, 2))
    usable = (total > 0) & (area > 0)
    n, blank = len(maps), int((total <= 0).sum())
    if not usable.any():
        return LungFocus(None, None, None, None, n=n, blank=blank)
    share = (maps * lungs).sum(axis=(1, 2))[usable] / total[usable]
    flat = maps[usable].reshape(int(usable.sum()), -1)
    peaks = lungs[usable].reshape(len(flat), -1)[np.arange(len(flat)), flat.argmax(axis=1)]
    return LungFocus(
        energy=float(share.mean()),
        energy_std=float(share.std()),
        ratio=float((share / area[usable]).mean()),
        pointing=float(peaks.mean()),
        n=n,
        blank=blank,
    )

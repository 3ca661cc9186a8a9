"""Chest X-ray datasets: layouts, class schemes, splits, duplicates, decoding and input pipelines.

This package knows images, never models. TensorFlow loads only with the input pipelines
(``make_dataset``, ``make_feature_dataset``), on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from cxrdata._atomic import atomic_write, one_at_a_time
from cxrdata._classes import (
    CLASSES,
    COVID,
    LUNG_OPACITY,
    NORMAL,
    SCHEMES,
    VIRAL_PNEUMONIA,
    Scheme,
    canonical_class,
    did_you_mean,
    get_scheme,
)
from cxrdata._decode import IMAGE_SUFFIXES, MAX_PIXELS, decode_image, decode_mask
from cxrdata._duplicates import DuplicateGroup, find_duplicates
from cxrdata._errors import DatasetError, ImageDecodeError
from cxrdata._images import ImageArrays, load_images, prepare_image
from cxrdata._leakage import LeakReport, leak_report
from cxrdata._manifest import Entry, Excluded, Manifest, scan
from cxrdata._region import (
    REGION_MARGIN,
    REGIONS,
    RegionInputs,
    apply_region,
    cached_region,
    check_region,
    hide_lungs,
    lung_box,
    to_original,
)
from cxrdata._split import SPLITS, Split, make_folds, make_split

__all__ = [
    "CLASSES",
    "COVID",
    "IMAGE_SUFFIXES",
    "LUNG_OPACITY",
    "MAX_PIXELS",
    "NORMAL",
    "REGIONS",
    "REGION_MARGIN",
    "SCHEMES",
    "SPLITS",
    "VIRAL_PNEUMONIA",
    "DatasetError",
    "DuplicateGroup",
    "Entry",
    "Excluded",
    "ImageArrays",
    "ImageDecodeError",
    "LeakReport",
    "Manifest",
    "RegionInputs",
    "Scheme",
    "Split",
    "apply_region",
    "atomic_write",
    "cached_region",
    "canonical_class",
    "check_region",
    "decode_image",
    "decode_mask",
    "did_you_mean",
    "find_duplicates",
    "get_scheme",
    "hide_lungs",
    "leak_report",
    "load_images",
    "lung_box",
    "make_dataset",
    "make_feature_dataset",
    "make_folds",
    "make_split",
    "one_at_a_time",
    "prepare_image",
    "scan",
    "to_original",
]

if TYPE_CHECKING:
    from cxrdata._pipeline import make_dataset, make_feature_dataset

_LAZY = {"make_dataset": "cxrdata._pipeline", "make_feature_dataset": "cxrdata._pipeline"}


def __getattr__(name: str) -> Any:
    """The TensorFlow pipelines, imported when first asked for (PEP 562)."""
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'cxrdata' has no attribute {name!r}")

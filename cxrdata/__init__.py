"""Chest X-ray datasets: layouts, class schemes, splits, duplicates, decoding and input pipelines.

This package knows images, never models.
"""

from cxrdata._atomic import atomic_write
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
from cxrdata._split import SPLITS, Split, make_folds, make_split

__all__ = [
    "CLASSES",
    "COVID",
    "IMAGE_SUFFIXES",
    "LUNG_OPACITY",
    "MAX_PIXELS",
    "NORMAL",
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
    "Scheme",
    "Split",
    "atomic_write",
    "canonical_class",
    "decode_image",
    "decode_mask",
    "did_you_mean",
    "find_duplicates",
    "get_scheme",
    "leak_report",
    "load_images",
    "make_folds",
    "make_split",
    "prepare_image",
    "scan",
]

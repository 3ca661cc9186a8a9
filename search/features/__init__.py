"""Feature cache: train only what changes, on activations of the frozen part computed once."""

from search.features._boundary import Boundary, find_boundary
from search.features._cache import DEFAULT_LIMIT_GB, FeatureCache, compute_features, feature_key, limit_bytes

__all__ = [
    "DEFAULT_LIMIT_GB",
    "Boundary",
    "FeatureCache",
    "compute_features",
    "feature_key",
    "find_boundary",
    "limit_bytes",
]

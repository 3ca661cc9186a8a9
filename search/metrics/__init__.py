"""Validation (and, at evaluation, test) metrics computed with scikit-learn, with operating points."""

from search.metrics._metrics import COVID_LABEL, TrialMetrics, compute_metrics
from search.metrics._operating import (
    DEFAULT_TARGET,
    OperatingPoint,
    OperatingTarget,
    at_threshold,
    choose_threshold,
    operating_point,
    wilson_interval,
)

__all__ = [
    "COVID_LABEL",
    "DEFAULT_TARGET",
    "OperatingPoint",
    "OperatingTarget",
    "TrialMetrics",
    "at_threshold",
    "choose_threshold",
    "compute_metrics",
    "operating_point",
    "wilson_interval",
]

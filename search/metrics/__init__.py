"""Validation (and, at evaluation, test) metrics computed with scikit-learn."""

from search.metrics._metrics import COVID_LABEL, TrialMetrics, compute_metrics

__all__ = ["COVID_LABEL", "TrialMetrics", "compute_metrics"]

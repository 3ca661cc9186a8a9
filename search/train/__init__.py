"""Training one model: warm-up, fine-tuning, early stopping, pruning reports."""

from search.train._fit import EpochRecord, Feed, FitResult, Reporter, fit_model

__all__ = ["EpochRecord", "Feed", "FitResult", "Reporter", "fit_model"]

"""Training one model: warm-up, fine-tuning, early stopping, pruning reports."""

from search.train._fit import EpochRecord, FitResult, Reporter, fit_model

__all__ = ["EpochRecord", "FitResult", "Reporter", "fit_model"]

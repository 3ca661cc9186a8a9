"""Training one model: warm-up, fine-tuning, early stopping, pruning reports."""

from search.train._fit import EpochRecord, Feed, FitResult, Reporter, fit_model
from search.train._focus import FocusTraining, outside_share

__all__ = ["EpochRecord", "Feed", "FitResult", "FocusTraining", "Reporter", "fit_model", "outside_share"]

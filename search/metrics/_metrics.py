"""Classification metrics of one split, with COVID-vs-rest figures whatever the scheme.

COVID is label 0 in every scheme (see ``cxrdata.Scheme``), so the COVID column of the
probabilities and row 0 of the confusion matrix mean the same thing in binary, three and four.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    precision_recall_fscore_support,
    roc_auc_score,
    roc_curve,
)

from search.metrics._operating import (
    DEFAULT_TARGET,
    OperatingPoint,
    OperatingTarget,
    at_threshold,
    operating_point,
    wilson_interval,
)

__all__ = ["COVID_LABEL", "TrialMetrics", "compute_metrics"]

COVID_LABEL = 0


@dataclass(frozen=True)
class TrialMetrics:
    """Metrics of one model on one split. ``None`` where a figure is undefined (e.g. no positive)."""

    split: str
    n: int
    loss: float | None
    accuracy: float
    balanced_accuracy: float
    covid_sensitivity: float | None
    covid_specificity: float | None
    covid_ppv: float | None
    covid_npv: float | None
    covid_auc: float | None
    roc_auc: float | None  # macro one-vs-rest over the scheme's classes
    class_names: tuple[str, ...]
    per_class: dict[str, dict[str, float | None]]
    confusion: tuple[tuple[int, ...], ...]
    covid_roc: tuple[tuple[float, ...], tuple[float, ...]] | None = None  # (fpr, tpr), at most ~100 points
    # 95% Wilson intervals of the argmax figures.
    covid_sensitivity_ci: tuple[float, float] | None = None
    covid_specificity_ci: tuple[float, float] | None = None
    # The COVID threshold for the study's target and what it gives (None without a target).
    operating: OperatingPoint | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _ratio(num: float, den: float) -> float | None:
    return None if den == 0 else float(num / den)


def _auc(y_true: np.ndarray, scores: np.ndarray, **kwargs: Any) -> float | None:
    if len(np.unique(y_true)) < 2:
        return None
    return float(roc_auc_score(y_true, scores, **kwargs))


_ROC_POINTS = 100


def _covid_roc(is_covid: np.ndarray, scores: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    if len(np.unique(is_covid)) < 2:
        return None
    fpr, tpr, _ = roc_curve(is_covid, scores, drop_intermediate=True)
    if len(fpr) > _ROC_POINTS:  # thin evenly, keeping both ends
        keep = np.unique(np.linspace(0, len(fpr) - 1, _ROC_POINTS).round().astype(int))
        fpr, tpr = fpr[keep], tpr[keep]
    return tuple(round(float(v), 5) for v in fpr), tuple(round(float(v), 5) for v in tpr)


def _clean(value: float) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


def compute_metrics(
    y_true: Sequence[int] | np.ndarray,
    proba: np.ndarray,
    class_names: Sequence[str],
    *,
    split: str = "val",
    loss: float | None = None,
    target: OperatingTarget | None = None,
    threshold: float | None = None,
) -> TrialMetrics:
    """Every figure the leaderboard shows, from labels and predicted probabilities.

    With a ``target``, the COVID threshold is chosen on these probabilities for it (the
    validation split); with a ``threshold`` as well, that threshold is measured as it is (a
    threshold chosen on validation, applied to the test split or an external set).
    """
    y = np.asarray(y_true, dtype=np.int64)
    proba = np.asarray(proba, dtype=np.float64)
    k = len(class_names)
    if proba.ndim != 2 or proba.shape != (len(y), k):
        raise ValueError(f"`proba` must have shape ({len(y)}, {k}), but got {proba.shape}.")
    labels = list(range(k))
    pred = proba.argmax(axis=1)
    cm = confusion_matrix(y, pred, labels=labels)
    precision, recall, f1, support = precision_recall_fscore_support(y, pred, labels=labels, zero_division=np.nan)
    total = cm.sum()
    per_class: dict[str, dict[str, float | None]] = {}
    for c, name in enumerate(class_names):
        fp = cm[:, c].sum() - cm[c, c]
        tn = total - cm[c, :].sum() - fp
        per_class[name] = {
            "precision": _clean(precision[c]),
            "recall": _clean(recall[c]),
            "f1": _clean(f1[c]),
            "specificity": _ratio(tn, tn + fp),
            "support": float(support[c]),
        }

    # COVID vs rest: collapse the confusion matrix to 2x2.
    tp = cm[COVID_LABEL, COVID_LABEL]
    fn = cm[COVID_LABEL, :].sum() - tp
    fp = cm[:, COVID_LABEL].sum() - tp
    tn = total - tp - fn - fp
    is_covid = (y == COVID_LABEL).astype(int)
    covid_score = proba[:, COVID_LABEL]
    operating = None
    if threshold is not None:
        operating = at_threshold(is_covid, covid_score, threshold, target or DEFAULT_TARGET)
    elif target is not None:
        operating = operating_point(is_covid, covid_score, target)
    macro_auc = (
        _auc(is_covid, proba[:, COVID_LABEL])
        if k == 2
        else _auc(y, proba, multi_class="ovr", average="macro", labels=labels)
        if len(np.unique(y)) == k
        else None
    )
    return TrialMetrics(
        split=split,
        n=len(y),
        loss=None if loss is None else float(loss),
        accuracy=float(accuracy_score(y, pred)) if len(y) else 0.0,
        balanced_accuracy=float(balanced_accuracy_score(y, pred)) if len(y) else 0.0,
        covid_sensitivity=_ratio(tp, tp + fn),
        covid_specificity=_ratio(tn, tn + fp),
        covid_ppv=_ratio(tp, tp + fp),
        covid_npv=_ratio(tn, tn + fn),
        covid_auc=_auc(is_covid, proba[:, COVID_LABEL]),
        roc_auc=macro_auc,
        class_names=tuple(class_names),
        per_class=per_class,
        confusion=tuple(tuple(int(v) for v in row) for row in cm),
        covid_roc=_covid_roc(is_covid, proba[:, COVID_LABEL]),
        covid_sensitivity_ci=wilson_interval(int(tp), int(tp + fn)),
        covid_specificity_ci=wilson_interval(int(tn), int(tn + fp)),
        operating=operating,
    )

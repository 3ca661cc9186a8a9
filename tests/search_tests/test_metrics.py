"""Metrics against values computed by hand from a fixed confusion matrix."""

from __future__ import annotations

import numpy as np
import pytest

from search.metrics import compute_metrics


def _from_confusion(cm: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Labels and one-hot-ish probabilities that give exactly this confusion matrix."""
    y, proba = [], []
    k = len(cm)
    for true, row in enumerate(cm):
        for pred, count in enumerate(row):
            for i in range(count):
                p = np.full(k, 0.1 / (k - 1))
                p[pred] = 0.9 - 0.001 * i  # distinct scores so AUC is defined
                y.append(true)
                proba.append(p / p.sum())
    return np.array(y), np.array(proba)


def test_three_class_metrics_match_hand_computation() -> None:
    cm = [[40, 8, 2], [5, 45, 0], [1, 4, 45]]  # rows: true COVID, Normal, VP
    y, proba = _from_confusion(cm)
    m = compute_metrics(y, proba, ("COVID", "Normal", "Viral Pneumonia"), loss=0.5)
    assert m.confusion == tuple(tuple(r) for r in cm)
    assert m.n == 150
    assert m.accuracy == pytest.approx(130 / 150)
    assert m.balanced_accuracy == pytest.approx((40 / 50 + 45 / 50 + 45 / 50) / 3)
    # COVID vs rest: TP 40, FN 10, FP 6, TN 94.
    assert m.covid_sensitivity == pytest.approx(40 / 50)
    assert m.covid_specificity == pytest.approx(94 / 100)
    assert m.covid_ppv == pytest.approx(40 / 46)
    assert m.covid_npv == pytest.approx(94 / 104)
    normal = m.per_class["Normal"]
    assert normal["precision"] == pytest.approx(45 / 57)
    assert normal["recall"] == pytest.approx(45 / 50)
    assert normal["f1"] == pytest.approx(2 * (45 / 57) * (45 / 50) / (45 / 57 + 45 / 50))
    assert normal["specificity"] == pytest.approx(88 / 100)  # FP 12 of 100 non-Normal
    assert normal["support"] == 50
    assert m.loss == 0.5
    assert m.roc_auc is not None and 0.5 < m.roc_auc <= 1.0


def test_binary_auc_is_covid_vs_rest() -> None:
    y = np.array([0, 0, 1, 1])
    proba = np.array([[0.9, 0.1], [0.4, 0.6], [0.6, 0.4], [0.1, 0.9]])
    m = compute_metrics(y, proba, ("COVID", "Non-COVID"))
    assert m.roc_auc == pytest.approx(0.75)
    assert m.covid_auc == pytest.approx(0.75)
    assert m.covid_sensitivity == pytest.approx(0.5)
    assert m.covid_roc is not None
    fpr, tpr = m.covid_roc
    assert fpr[0] == 0.0 and fpr[-1] == 1.0 and tpr[-1] == 1.0


def test_undefined_figures_are_none_not_nan() -> None:
    y = np.array([1, 1, 2])
    proba = np.array([[0.1, 0.8, 0.1], [0.1, 0.1, 0.8], [0.2, 0.2, 0.6]])
    m = compute_metrics(y, proba, ("COVID", "Normal", "Viral Pneumonia"))
    assert m.covid_sensitivity is None  # no COVID case
    assert m.covid_ppv is None  # no COVID prediction
    assert m.per_class["COVID"]["precision"] is None
    assert m.covid_auc is None
    assert m.roc_auc is None


def test_shape_mismatch_is_refused() -> None:
    with pytest.raises(ValueError, match=r"`proba` must have shape \(2, 3\), but got \(2, 2\)\."):
        compute_metrics([0, 1], np.zeros((2, 2)), ("a", "b", "c"))

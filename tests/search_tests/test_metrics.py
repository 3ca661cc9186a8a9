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


# --- intervals and operating points ---------------------------------------------------------

from scipy.stats import binomtest  # noqa: E402

from search.metrics import OperatingTarget, at_threshold, choose_threshold, operating_point, wilson_interval  # noqa: E402


@pytest.mark.parametrize(("k", "n"), [(40, 50), (0, 20), (120, 120), (1, 1), (57, 60), (228, 240)])
def test_wilson_interval_matches_scipy(k: int, n: int) -> None:
    expected = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    interval = wilson_interval(k, n)
    assert interval is not None
    low, high = interval
    assert low == pytest.approx(expected.low, abs=1e-9)
    assert high == pytest.approx(expected.high, abs=1e-9)
    assert 0.0 <= low <= k / n <= high <= 1.0


def test_wilson_interval_of_nothing_is_none() -> None:
    assert wilson_interval(0, 0) is None


def test_argmax_figures_carry_their_intervals() -> None:
    cm = [[40, 8, 2], [5, 45, 0], [1, 4, 45]]
    y, proba = _from_confusion(cm)
    m = compute_metrics(y, proba, ("COVID", "Normal", "Viral Pneumonia"))
    assert m.covid_sensitivity_ci == wilson_interval(40, 50)
    assert m.covid_specificity_ci == wilson_interval(94, 100)
    assert m.operating is None  # no target asked for


def _scores(neg: list[float], pos: list[float]) -> tuple[np.ndarray, np.ndarray]:
    return np.array([0] * len(neg) + [1] * len(pos)), np.array(neg + pos)


def test_specificity_target_puts_the_threshold_above_enough_negatives() -> None:
    # 20 negatives at 0.00..0.19 and one at 0.9 (a hard Normal), positives spread over 0.15..0.95.
    neg = [i / 100 for i in range(20)] + [0.9]
    pos = [0.15, 0.5, 0.7, 0.8, 0.95]
    y, s = _scores(neg, pos)
    point = operating_point(y, s, OperatingTarget("specificity", 0.95))
    assert point is not None
    # ceil(0.95 * 21) = 20 negatives must fall below: the 20th lowest is 0.19, the next score 0.5.
    assert point.threshold == pytest.approx((0.19 + 0.5) / 2)
    assert point.specificity == pytest.approx(20 / 21)
    assert point.sensitivity == pytest.approx(4 / 5)  # 0.15 is lost to the hard negatives around it
    assert point.sensitivity_ci == wilson_interval(4, 5)


def test_sensitivity_target_puts_the_threshold_below_enough_positives() -> None:
    y, s = _scores([0.1, 0.2, 0.3, 0.6], [0.4, 0.7, 0.8, 0.9])
    threshold = choose_threshold(y, s, OperatingTarget("sensitivity", 0.75))
    assert threshold is not None
    # ceil(0.75 * 4) = 3 positives at or above: the 3rd highest is 0.7; the next lower score 0.6.
    assert threshold == pytest.approx(0.65)
    point = at_threshold(y, s, threshold)
    assert (point.sensitivity, point.specificity) == (0.75, 1.0)


@pytest.mark.parametrize(
    ("neg", "pos", "target", "expected"),
    [
        ([0.2, 0.4], [0.9], OperatingTarget("specificity", 0.5), (0.2 + 0.4) / 2),
        ([0.9, 0.95], [0.1], OperatingTarget("specificity", 0.99), (0.95 + 1.0) / 2),  # nothing above: towards 1
        ([0.1], [0.3, 0.5], OperatingTarget("sensitivity", 0.9), (0.1 + 0.3) / 2),
        ([0.6], [0.3, 0.5], OperatingTarget("sensitivity", 0.9), 0.3),  # nothing below: at the lowest positive
    ],
)
def test_threshold_edges(neg: list[float], pos: list[float], target: OperatingTarget, expected: float) -> None:
    y, s = _scores(neg, pos)
    assert choose_threshold(y, s, target) == pytest.approx(expected)


def test_a_target_without_the_class_it_counts_gives_no_threshold() -> None:
    y, s = _scores([], [0.3, 0.8])
    assert choose_threshold(y, s, OperatingTarget("specificity", 0.95)) is None
    assert operating_point(y, s, OperatingTarget("specificity", 0.95)) is None
    point = at_threshold(y, s, 0.5)
    assert point.specificity is None and point.sensitivity == 0.5


def test_metrics_at_a_given_threshold_measure_it_unchanged() -> None:
    y = np.array([0, 0, 1, 1])
    proba = np.array([[0.9, 0.1], [0.4, 0.6], [0.6, 0.4], [0.1, 0.9]])
    chosen = compute_metrics(y, proba, ("COVID", "Non-COVID"), target=OperatingTarget("specificity", 0.5))
    assert chosen.operating is not None and chosen.operating.specificity == 0.5
    fixed = compute_metrics(y, proba, ("COVID", "Non-COVID"), threshold=0.35)
    assert fixed.operating is not None and fixed.operating.threshold == 0.35
    assert (fixed.operating.sensitivity, fixed.operating.specificity) == (1.0, 0.5)


@pytest.mark.parametrize(
    ("kind", "value", "message"),
    [
        ("specificity", 0.0, r"`0 < target specificity < 1` must hold, but got 0.0\."),
        ("specificity", 1.0, r"`0 < target specificity < 1` must hold, but got 1.0\."),
        ("sensitivity", -0.2, r"`0 < target sensitivity < 1` must hold, but got -0.2\."),
        ("sensitivity", float("nan"), r"`0 < target sensitivity < 1` must hold, but got nan\."),
        ("accuracy", 0.9, r"must be a specificity or a sensitivity, but got 'accuracy'\."),
    ],
)
def test_bad_targets_are_refused(kind: str, value: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        OperatingTarget(kind, value)

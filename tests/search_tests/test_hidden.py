"""The COVID AUC with the lungs hidden: what a model can tell by what lies outside them."""

from __future__ import annotations

import numpy as np
import pytest

from search._hidden import hidden_lungs_auc


@pytest.mark.parametrize(
    ("labels", "proba", "expected"),
    [
        ([0, 0, 1, 2], [0.9, 0.8, 0.2, 0.1], 1.0),  # COVID (label 0) above every other class
        ([0, 0, 1, 2], [0.1, 0.2, 0.8, 0.9], 0.0),
        ([0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5], 0.5),  # one score for all: chance
        ([0, 0, 0], [0.9, 0.8, 0.2], None),  # COVID alone: no AUC
        ([1, 2, 2], [0.9, 0.8, 0.2], None),  # no COVID: no AUC
        ([], [], None),
    ],
)
def test_hidden_lungs_auc_is_covid_against_the_rest(
    labels: list[int], proba: list[float], expected: float | None
) -> None:
    assert hidden_lungs_auc(np.array(labels, dtype=int), np.array(proba)) == expected

"""A trial's external-validation rows on the leaderboard: beside validation and test, never ranked."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from leaderboard import data as D
from leaderboard.synthetic import make_synthetic_study
from search.space import TrialConfig
from search.store import ResultStore, TrialRow, config_row
from tests.leaderboard_tests.conftest import open_page

BEST, WORST = 3, 4  # make_synthetic_study forces BEST to rank first; WORST is given the worst figures below
EXTERNAL = "external: hospital-b — never used to rank"
TEST = "test (measured once) — never used to rank"


def _beside(store: ResultStore, number: int, split: str, figure: float) -> TrialRow:
    row = config_row("demo", number, TrialConfig("MobileNetV2", 1.0, 64, 0.1, 1e-3, 0.0, "three"), "COMPLETE")
    row.split = split
    row.op_sensitivity = row.op_specificity = row.covid_sensitivity = row.covid_specificity = figure
    row.covid_auc = row.roc_auc = row.accuracy = row.lung_focus = row.lung_focus_ratio = figure
    row.op_sensitivity_low, row.op_sensitivity_high = figure - 0.1, figure
    return row


@pytest.fixture
def url(tmp_path: Path) -> str:
    return external_study(tmp_path)


def external_study(folder: Path) -> str:
    """A small synthetic study whose worst trial is perfect on a test split and on another hospital's images."""
    url = f"sqlite:///{folder / 'optuna.db'}"
    assert make_synthetic_study(url, "demo", 12, seed=4, best=BEST) == BEST
    store = ResultStore(url)
    worst = store.trials("demo")[WORST]
    worst.state, worst.op_sensitivity, worst.covid_specificity, worst.lung_focus = "COMPLETE", 0.01, 0.99, 0.01
    store.record(worst)
    store.record(_beside(store, WORST, "test", 0.97))
    external = _beside(store, WORST, "external:hospital-b", 1.0)
    external.covid_specificity = external.op_specificity = None  # one class: COVID only
    external.lung_focus_n = 5
    external.external_json = json.dumps(
        {
            "name": "hospital-b",
            "path": "/data/hospital-b",
            "fingerprint": "abcd1234abcd1234",
            "n": 5,
            "left_out": {
                "copies_of_study_images": 2, "exact_copies": 1, "near_copies": 1, "duplicate_check": "done",
                "classes_the_model_does_not_know": {"Lung_Opacity": 3}, "folders_naming_no_class": [],
                "unusable_files": 0,
            },
            "note": "one class only (COVID): specificity, AUC and accuracy are undefined; COVID sensitivity alone",
        }
    )  # fmt: skip
    store.record(external)
    return url


def test_external_rows_sit_beside_validation_and_test(url: str) -> None:
    detail = D.trial_detail(D.read_only_engine(url), "demo", WORST)
    assert detail is not None and not detail.problems
    frame = detail.by_split
    assert list(frame.columns) == ["validation", TEST, EXTERNAL]
    assert frame.loc["COVID sensitivity @ target", EXTERNAL] == 1.0
    assert frame.loc["COVID sensitivity @ target", "validation"] == 0.01
    assert frame.loc["COVID sensitivity @ target", TEST] == 0.97
    specificity: object = frame.loc["COVID specificity @ target", EXTERNAL]
    assert specificity is None or (isinstance(specificity, float) and math.isnan(specificity)), "one class: none"
    assert frame.loc["images", EXTERNAL] == 5 and frame.loc["lung focus: images measured", EXTERNAL] == 5
    assert detail.external_notes == [
        "external: hospital-b — /data/hospital-b, fingerprint abcd1234abcd1234; left out: 2 copies of the study's "
        "images (1 exact, 1 near); 3 Lung_Opacity (a class the model does not know). one class only (COVID): "
        "specificity, AUC and accuracy are undefined; COVID sensitivity alone."
    ]
    assert detail.metrics["op_sensitivity"] == 0.01, "the trial's own figures stay its validation figures"


def test_a_perfect_external_row_does_not_move_the_ranking(url: str) -> None:
    engine = D.read_only_engine(url)
    frame, total = D.ranking(engine, "demo", page_size=100)
    assert frame.iloc[0]["trial_number"] == BEST
    assert frame["trial_number"].tolist().count(WORST) == 1, "one row per trial: its validation row"
    assert frame[frame["trial_number"] == WORST].iloc[0]["op_sensitivity"] == 0.01
    assert len(D.all_trials(engine, "demo")) == 12, "every trial once"
    assert [r.trial_number for r in ResultStore(url).ranked("demo", limit=1)] == [BEST]
    with ResultStore(url).engine.begin() as conn:
        from sqlalchemy import text

        conn.execute(text("DELETE FROM cxr_trials WHERE split != 'val'"))
    again, total_again = D.ranking(engine, "demo", page_size=100)
    assert again["trial_number"].tolist() == frame["trial_number"].tolist() and total_again == total


def test_a_corrupt_external_column_is_reported_not_raised(url: str) -> None:
    store = ResultStore(url)
    row = _beside(store, WORST, "external:broken", 0.5)
    row.external_json = "{not json"
    store.record(row)
    detail = D.trial_detail(D.read_only_engine(url), "demo", WORST)
    assert detail is not None
    assert "external: broken — never used to rank" in detail.by_split.columns
    assert any("The column external_json of this trial must hold JSON" in p for p in detail.problems)


def test_the_trial_page_shows_a_column_per_row_kind(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    at = open_page(monkeypatch, url, "trial", trial=str(WORST))
    assert not at.exception
    table = next(d.value for d in at.dataframe if EXTERNAL in list(d.value.columns))
    assert list(table.columns) == ["validation", TEST, EXTERNAL]
    captions = [c.value for c in at.caption]
    assert any("measured once, at that threshold, and never used to rank" in c for c in captions)
    assert any(c.startswith("external\\: hospital-b — /data/hospital-b") for c in captions), captions

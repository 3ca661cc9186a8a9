"""Cross-validated trials (``--folds K``): out-of-fold figures, the running-mean pruning signal, the fold bag."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cxrdata import make_folds, scan
from search._trial import TrialData, run_trial
from search.space import TrialConfig
from tests.conftest import BASE, launch

CONFIG = TrialConfig(
    "MobileNet_0.25", 1.0, 16, 0.1, 3e-3, 0.0, "three", image_size=32, max_epochs=2, weights="none", folds=3
)


@pytest.fixture(scope="module")
def reported(tiny: Path) -> tuple[object, list[tuple[int, float]], TrialData]:
    data = TrialData(scan(tiny))
    seen: list[tuple[int, float]] = []

    def report(step: int, value: float) -> bool:
        seen.append((step, value))
        return False

    return run_trial(CONFIG, data, report=report, keep_model=True), seen, data


@pytest.mark.slow
def test_every_train_and_validation_image_is_measured_once_out_of_fold(reported) -> None:
    outcome, _, data = reported
    split = data.split("three")
    assert outcome.predictions.kind == "oof"
    pool = np.sort(np.concatenate([split.indices["train"], split.indices["val"]]))
    assert np.array_equal(outcome.predictions.indices, pool)
    assert not set(outcome.predictions.indices.tolist()) & set(split.indices["test"].tolist())
    assert np.array_equal(outcome.predictions.labels, split.labels[pool])
    assert outcome.metrics.n == len(pool)
    assert outcome.hidden_lungs_auc is not None and 0.0 <= outcome.hidden_lungs_auc <= 1.0, "pooled over the folds"


@pytest.mark.slow
def test_figures_are_fold_means_with_their_spread_and_the_threshold_is_pooled(reported) -> None:
    outcome, _, _ = reported
    spread = outcome.fold_spread
    assert len(spread["accuracy"]["folds"]) == 3
    assert outcome.metrics.accuracy == pytest.approx(np.mean(spread["accuracy"]["folds"]))
    assert spread["accuracy"]["std"] == pytest.approx(np.std(spread["accuracy"]["folds"]))
    assert outcome.fit.best_val_loss == pytest.approx(np.mean(spread["loss"]["folds"]))
    op = outcome.metrics.operating
    assert op is not None and op.target.kind == "specificity"
    n_others = int((outcome.predictions.labels != 0).sum())
    assert op.specificity >= 0.95 and op.specificity_ci[1] - op.specificity_ci[0] < 0.5
    assert n_others > 20, "the threshold is chosen on every out-of-fold non-COVID image"


@pytest.mark.slow
def test_the_pruner_sees_the_running_mean_at_steps_that_continue_across_folds(reported) -> None:
    outcome, seen, _ = reported
    assert [step for step, _ in seen] == [0, 1, 2, 3, 4, 5], "fold k reports steps k*max_epochs + epoch"
    losses = [r.val_loss for r in outcome.fit.history]
    assert seen[0][1] == pytest.approx(losses[0])
    best = outcome.fold_spread["loss"]["folds"]
    assert seen[2][1] == pytest.approx((best[0] + losses[2]) / 2)
    assert seen[5][1] == pytest.approx((best[0] + best[1] + losses[5]) / 3)
    assert len({r.epoch for r in outcome.fit.history}) == 6, "one epoch row per step"


@pytest.mark.slow
def test_a_fold_model_per_fold_is_kept(reported) -> None:
    outcome, _, _ = reported
    assert [p.name for p in outcome.fold_models] == ["fold-0.keras", "fold-1.keras", "fold-2.keras"]
    assert all(p.is_file() for p in outcome.fold_models)


def test_folds_refuse_a_split_with_too_few_groups(tiny: Path) -> None:
    data = TrialData(scan(tiny))
    with pytest.raises(ValueError, match=r"`k` folds need at least k groups of images, but got k=500 and \d+ groups\."):
        make_folds(data.manifest, data.split("three"), 500)


@pytest.mark.slow
def test_a_cross_validated_search_exports_its_fold_bag(tiny: Path, tmp_path: Path) -> None:
    from search.export import export
    from search.predict import Predictor

    done = launch("--trials", "2", "--folds", "2", "--data", str(tiny), *BASE, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    from search.store import ResultStore

    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    rows = ResultStore(url).ranked("cxr-search")
    assert rows and all(r.folds == 2 and r.fold_spread_json for r in rows)
    assert len([a for a in rows[0].artifacts if a.kind == "model"]) == 2, "one saved model per fold"
    result = export(url, "cxr-search", tmp_path / "bag", trial=rows[0].trial_number, formats=["keras"])
    card = result.card
    assert card["members"][0]["models"] == 2 and card["kind"] == "ensemble"
    assert [w for _, w in card["gradcam"]["members"]] == [0.5, 0.5]
    assert card["validation"]["split"] == "oof" and card["validation"]["n"] == len(tiny_pool(tiny))
    line = next(Predictor(tmp_path / "bag").predict([tiny / scan(tiny).entries[0].path], tmp_path / "cams"))
    assert "probabilities" in line and Path(line["gradcam"]).is_file()
    assert json.loads((tmp_path / "bag" / "model_card.json").read_text())["trial"] == rows[0].trial_number


def tiny_pool(tiny: Path) -> np.ndarray:
    split = TrialData(scan(tiny)).split("three")
    return np.concatenate([split.indices["train"], split.indices["val"]])

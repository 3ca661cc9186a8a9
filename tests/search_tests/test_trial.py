"""Training one trial, and pruning a hopeless one through a real study."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import optuna
import pytest

from cxrdata import scan
from search._trial import TrialData, run_trial
from search.launch import parse_args, prepare
from search.space import TrialConfig
from search.store import ResultStore
from search.worker import WorkerJob, run_worker

pytestmark = pytest.mark.slow  # every test here trains


def test_a_trial_trains_and_measures_the_validation_split(tiny: Path) -> None:
    config = TrialConfig(
        "MobileNet_0.25", 1.0, 16, 0.1, 3e-3, 0.5, "three", image_size=32, max_epochs=2, weights="none"
    )
    data = TrialData(scan(tiny))
    outcome = run_trial(config, data)
    assert outcome.metrics is not None
    val = data.split("three").indices["val"]
    assert outcome.metrics.n == len(val), "metrics come from the validation split only"
    assert outcome.metrics.split == "val"
    assert [r.epoch for r in outcome.fit.history] == [0, 1]
    assert outcome.fit.best_val_loss == min(r.val_loss for r in outcome.fit.history)
    assert outcome.trainable_params < outcome.params
    assert outcome.built is None, "the model is released unless asked for"


def test_pretrained_unfrozen_backbone_warms_up_the_head_first(tiny: Path) -> None:
    from tests.conftest import WEIGHTS

    config = TrialConfig(
        "MobileNet_0.25", 0.5, 16, 0.1, 3e-3, 0.0, "binary", image_size=32, max_epochs=3, weights=str(WEIGHTS)
    )
    outcome = run_trial(config, TrialData(scan(tiny)))
    phases = [(r.epoch, r.phase) for r in outcome.fit.history]
    assert phases[0] == (0, "head")
    assert all(p == "fine-tune" for _, p in phases[1:]) and [e for e, _ in phases] == list(range(len(phases)))
    assert outcome.fit.history[1].learning_rate == pytest.approx(3e-4)


def _args(tiny: Path, tmp_path: Path, *extra: str) -> argparse.Namespace:
    return parse_args(
        [
            "--trials", "2", "--data", str(tiny), "--storage", f"sqlite:///{tmp_path / 'optuna.db'}",
            "--weights", "none", "--image-size", "32", "--max-epochs", "4", "--backbones", "MobileNet_0.25",
            *extra,
        ]
    )  # fmt: skip


def test_pruning_stops_a_hopeless_trial(tiny: Path, tmp_path: Path) -> None:
    config = tmp_path / "space.toml"
    config.write_text(
        """
[space]
backbones = ["MobileNet_0.25"]
schemes = ["three"]
freeze_depth = 1.0
head_width = 32
dropout = { low = 0.0, high = 0.9 }
learning_rate = { low = 1e-3, high = 1.0, log = true }
augment_strength = 0.0
[training]
pruner = "median"
pruner_startup_trials = 1
pruner_warmup_epochs = 0
patience = 10
"""
    )
    plan = prepare(_args(tiny, tmp_path, "--config", str(config)))
    study = optuna.load_study(study_name=plan.study, storage=plan.storage)
    study.enqueue_trial({"dropout": 0.0, "learning_rate": 3e-3})
    study.enqueue_trial({"dropout": 0.9, "learning_rate": 1.0})  # hopeless: Adam at lr 1 diverges
    run_worker(WorkerJob(plan.storage, plan.study, 2, handle_sigint=False))
    states = [t.state for t in study.get_trials()]
    assert states == [optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED]
    rows = ResultStore(plan.storage).trials(plan.study)
    assert [r.state for r in rows] == ["COMPLETE", "PRUNED"]
    assert rows[0].epochs_run == 4
    assert rows[1].pruned_at_epoch is not None and rows[1].epochs_run < 4
    assert len(rows[1].epochs) == rows[1].epochs_run, "a pruned trial keeps its learning curve"
    assert rows[1].covid_sensitivity is None


@pytest.mark.parametrize("region", ["lung_crop", "lung_mask", "lung_crop_mask"])
def test_a_lung_region_trial_trains_on_the_cut_images_and_measures_focus_on_the_whole_x_ray(
    tiny: Path, region: str
) -> None:
    config = TrialConfig(
        "MobileNet_0.25", 1.0, 16, 0.1, 3e-3, 0.0, "three", input_region=region, image_size=32, max_epochs=1,
        weights="none",
    )  # fmt: skip
    data = TrialData(scan(tiny))
    whole, seen = data.arrays(32, 0.0), data.inputs(config)
    assert seen.images.shape == whole.images.shape and not np.array_equal(seen.images, whole.images)
    assert data.inputs_key(config) != data.manifest.fingerprint, "cached activations of whole images are not reused"
    outcome = run_trial(config, data)
    assert outcome.focus is not None and outcome.focus.n > 0 and outcome.focus_source == "dataset"
    assert outcome.overlays and outcome.overlays[0][1].shape == (32, 32, 3)
    assert outcome.hidden_lungs_auc is not None
    if region != "lung_crop":  # the lungs hidden, these see a black image: every X-ray scores the same
        assert outcome.hidden_lungs_auc == 0.5


def test_workers_starting_together_segment_the_images_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Four workers of one machine ask for the lung masks at once: one segments, three read its cache."""
    import threading
    import time

    import cxrdata.lungs
    from cxrdata.synthetic import SyntheticSpec, make_synthetic_dataset

    data = make_synthetic_dataset(tmp_path / "unmasked", SyntheticSpec(per_class=3, size=32, masks=False, seed=4))
    manifest = scan(data)
    calls: list[int] = []

    def slow_segment(model: object, images: np.ndarray) -> np.ndarray:
        calls.append(len(images))
        time.sleep(0.5)  # long enough for every other worker to be waiting
        return np.ones(images.shape[:3], bool)

    monkeypatch.setattr(cxrdata.lungs, "load_segmenter", lambda path, **_: object())
    monkeypatch.setattr(cxrdata.lungs, "segment", slow_segment)
    (tmp_path / "lungs.keras").write_bytes(b"a segmenter")
    results: list[np.ndarray] = []

    def worker() -> None:
        trial_data = TrialData(manifest, cache_dir=tmp_path / "cache", lung_model=tmp_path / "lungs.keras")
        results.append(trial_data.lung_masks(32, 0.0)[0])

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert calls == [len(manifest.entries)], "segmented once, by one worker"
    assert len(results) == 4 and all(r.all() for r in results), "the others read what it wrote"


def test_a_lung_region_needs_masks(tiny: Path, tmp_path: Path) -> None:
    import shutil

    from cxrdata import DatasetError

    bare = tmp_path / "bare"
    shutil.copytree(tiny, bare)
    for masks in bare.glob("*/masks"):
        shutil.rmtree(masks)
    config = TrialConfig("MobileNet_0.25", 1.0, 16, 0.1, 3e-3, 0.0, "three", input_region="lung_crop", image_size=32)
    with pytest.raises(DatasetError, match=r"^`input_region=lung_crop` needs lung masks, but the dataset has none"):
        TrialData(scan(bare)).inputs(config)

"""The KerasTuner engine: same space, same trial runner, same results store, resumable."""

from __future__ import annotations

import json
from pathlib import Path

import keras_tuner as kt
import optuna
import pytest

from search.kerastuner import HyperParametersTrial, SpaceHyperModel, tuner_directory
from search.launch import main
from search.space import load_space
from search.store import ResultStore
from search.worker import WorkerJob, run_worker
from tests.conftest import BASE


def test_the_space_declared_through_keras_tuner_is_the_optuna_space() -> None:
    space = load_space()
    hp = kt.HyperParameters()
    SpaceHyperModel(space, "none", 0).build(hp)
    declared = {p.name: p for p in hp.space}
    assert set(declared) == {
        "backbone", "freeze_depth", "head_width", "dropout", "learning_rate", "augment_strength", "scheme",
        "input_region", "focus_weight",
    }  # fmt: skip
    assert list(declared["input_region"].values) == list(space.regions)
    assert isinstance(declared["focus_weight"], kt.engine.hyperparameters.Fixed)
    assert declared["focus_weight"].value == space.focus_weight.low == 2.0
    assert list(declared["backbone"].values) == list(space.backbones)
    assert declared["freeze_depth"].step == space.freeze_depth.step
    depth = (declared["freeze_depth"].min_value, declared["freeze_depth"].max_value)
    assert depth == (space.freeze_depth.low, space.freeze_depth.high) == (0.75, 1.0)
    assert declared["learning_rate"].sampling == "log"
    assert declared["head_width"].sampling == "log"


def test_fixed_values_and_hyperband_epochs_reach_the_config() -> None:
    space = load_space().with_overrides(backbones=["MobileNet_0.25"], max_epochs=9)
    hp = kt.HyperParameters()
    hp.values["tuner/epochs"] = 3
    config = SpaceHyperModel(space, "none", 7).config(hp, number=4)
    assert config.backbone == "MobileNet_0.25" and config.max_epochs == 3 and config.seed == 11


def test_the_adapter_answers_like_an_optuna_trial() -> None:
    hp = kt.HyperParameters()
    trial = HyperParametersTrial(hp, 0)
    assert trial.suggest_float("x", 0.25, 0.25) == 0.25
    assert 1e-4 <= trial.suggest_float("lr", 1e-4, 1e-2, log=True) <= 1e-2
    assert trial.suggest_int("w", 32, 512, log=True) in range(32, 513)
    assert trial.suggest_categorical("c", ["a", "b"]) == "a"  # KerasTuner's default is the first choice


def _run(workdir: Path, tiny: Path, *extra: str) -> int:
    storage = f"sqlite:///{workdir / 'optuna.db'}"
    return main(["--storage", storage, "--data", str(tiny), "--engine", "keras-tuner", *BASE, *extra])


@pytest.mark.slow
def test_both_engines_write_comparable_rows_for_the_same_config(tiny: Path, tmp_path: Path) -> None:
    assert _run(tmp_path, tiny, "--trials", "1", "--tuner", "random", "--pruner", "none") == 0
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    store = ResultStore(storage)
    (kt_row,) = store.trials("cxr-search")
    assert kt_row.engine == "keras-tuner" and kt_row.state == "COMPLETE"
    # The same config through the Optuna engine: the trial runner makes the same model and numbers.
    config = json.loads(kt_row.config_json)
    study = optuna.load_study(study_name="cxr-search", storage=storage)
    study.enqueue_trial({k: config[k] for k in ("backbone", "freeze_depth", "head_width", "dropout",
                                                "learning_rate", "augment_strength", "scheme")})  # fmt: skip
    run_worker(WorkerJob(storage, "cxr-search", 1, handle_sigint=False))
    rows = {r.engine: r for r in store.trials("cxr-search")}
    assert set(rows) == {"optuna", "keras-tuner"}
    optuna_row = rows["optuna"]
    assert json.loads(optuna_row.config_json) == config, "one space, one config, both engines"
    for column in ("covid_sensitivity", "accuracy", "loss", "roc_auc", "lung_focus", "epochs_run"):
        mine, theirs = getattr(optuna_row, column), getattr(kt_row, column)
        assert (mine is None and theirs is None) or mine == pytest.approx(theirs, rel=1e-3, abs=1e-4), column
    ranked = store.ranked("cxr-search")
    assert {r.engine for r in ranked} == {"optuna", "keras-tuner"}, "one leaderboard ranks both engines"


@pytest.mark.slow
def test_a_rerun_resumes_the_keras_tuner_state(tiny: Path, tmp_path: Path) -> None:
    assert _run(tmp_path, tiny, "--trials", "2") == 0
    state = tuner_directory(tmp_path / "artifacts", tmp_path / ".cache") / "cxr-search-hyperband"
    assert (state / "oracle.json").is_file(), "KerasTuner's state folder lives beside the study"
    assert _run(tmp_path, tiny, "--trials", "2") == 0
    rows = ResultStore(f"sqlite:///{tmp_path / 'optuna.db'}").trials("cxr-search")
    assert sorted(r.trial_number for r in rows) == [0, 1, 2, 3], "the second run continues, it does not restart"
    assert {r.engine for r in rows} == {"keras-tuner"}
    oracle = json.loads((state / "oracle.json").read_text())
    assert len(oracle["end_order"]) == 4


def test_keras_tuner_refuses_many_workers(tiny: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(tmp_path, tiny, "--trials", "2", "--workers", "2") == 1
    assert "`--engine keras-tuner` runs in one process" in capsys.readouterr().err
    assert not (tmp_path / "optuna.db").exists(), "refused before anything was written"

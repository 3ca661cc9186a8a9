"""The search space obeys its config, and every invalid config is refused up front."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pytest

from search import SearchError
from search.space import DEFAULT_SPACE_FILE, SearchSpace, TrialConfig, load_space

BASE: dict[str, Any] = {
    "space": {
        "backbones": ["MobileNetV2", "DenseNet121"],
        "schemes": ["three", "binary"],
        "freeze_depth": {"low": 0.5, "high": 1.0, "step": 0.25},
        "head_width": {"low": 16, "high": 256, "log": True},
        "dropout": {"low": 0.0, "high": 0.5},
        "learning_rate": {"low": 1e-4, "high": 1e-2, "log": True},
        "augment_strength": 0.5,
    },
    "training": {"image_size": 64, "max_epochs": 3},
}


def _with(section: str, key: str, value: Any) -> dict[str, Any]:
    data = {"space": dict(BASE["space"]), "training": dict(BASE["training"])}
    data[section][key] = value
    return data


def test_the_packaged_default_is_valid() -> None:
    space = load_space(DEFAULT_SPACE_FILE).check()
    assert "DenseNet121" in space.backbones


def test_suggestions_obey_the_config() -> None:
    space = SearchSpace.from_dict(BASE).check()
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = []
    for _ in range(60):
        trial = study.ask()
        config = space.suggest(trial, weights="none", seed=7)
        study.tell(trial, 0.0)
        seen.append(config)
    assert {c.backbone for c in seen} == {"MobileNetV2", "DenseNet121"}
    assert {c.scheme for c in seen} == {"three", "binary"}
    assert {c.freeze_depth for c in seen} <= {0.5, 0.75, 1.0} and len({c.freeze_depth for c in seen}) == 3
    assert all(16 <= c.head_width <= 256 and isinstance(c.head_width, int) for c in seen)
    assert all(0.0 <= c.dropout <= 0.5 for c in seen)
    assert all(1e-4 <= c.learning_rate <= 1e-2 for c in seen)
    assert {c.augment_strength for c in seen} == {0.5}, "a number fixes the parameter"
    assert {(c.image_size, c.max_epochs, c.weights) for c in seen} == {(64, 3, "none")}
    assert [c.seed for c in seen[:3]] == [7, 8, 9], "each trial gets its own seed"


def test_config_round_trips_through_json() -> None:
    config = TrialConfig("VGG16", 0.5, 64, 0.1, 1e-3, 0.25, "binary", image_size=96)
    assert TrialConfig.from_json(config.to_json()) == config


def test_a_short_epoch_budget_caps_the_warmup() -> None:
    space = SearchSpace.from_dict(BASE).with_overrides(max_epochs=1).check()
    assert (space.training.max_epochs, space.training.warmup_epochs) == (1, 0)


def test_focus_weight_is_optional_in_a_space_file_and_a_flag_fixes_it() -> None:
    assert "focus_weight" not in BASE["space"], "a space written before the penalty existed"
    space = SearchSpace.from_dict(BASE).check()
    assert (space.focus_weight.low, space.focus_weight.high) == (0.0, 0.0), "... trains without it"
    searched = SearchSpace.from_dict(_with("space", "focus_weight", {"low": 0.0, "high": 4.0, "step": 2.0}))
    fixed = searched.with_overrides(focus_weight=1.5).check()
    assert (fixed.focus_weight.low, fixed.focus_weight.high) == (1.5, 1.5)
    assert load_space().focus_weight.low == 2.0, "the packaged space trains every model to look at the lungs"


def test_overrides_replace_choices_and_training() -> None:
    space = SearchSpace.from_dict(BASE).with_overrides(backbones=["VGG16"], image_size=96, max_epochs=None)
    assert space.backbones == ("VGG16",)
    assert (space.training.image_size, space.training.max_epochs) == (96, 3)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            _with("space", "dropout", {"low": 0.5, "high": 0.1}),
            "`low <= high` must hold for dropout, but got (low=0.5, high=0.1).",
        ),
        (
            _with("space", "learning_rate", {"low": 0.0, "high": 0.1, "log": True}),
            "learning_rate must lie within [1e-07, 1.0], but got (low=0.0, high=0.1).",
        ),
        (
            _with("space", "dropout", {"low": 0.0, "high": 1.0}),
            "dropout must lie within [0.0, 0.95], but got (low=0.0, high=1.0).",
        ),
        (
            _with("space", "focus_weight", -1.0),
            "focus_weight must lie within [0.0, 100.0], but got (low=-1.0, high=-1.0).",
        ),
        (
            _with("space", "head_width", {"low": 8.5, "high": 64}),
            "head_width takes whole numbers, but got (low=8.5, high=64.0).",
        ),
        (
            _with("space", "freeze_depth", {"low": 0.1, "high": 0.9, "log": True, "step": 0.1}),
            "freeze_depth may have `log` or `step`, not both, but got log=true and step=0.1.",
        ),
        (
            _with("space", "dropout", "high"),
            "dropout must be a number or a table {low, high, log?, step?}, but got 'high'.",
        ),
        (
            _with("space", "backbones", ["ResNet50"]),
            "`backbone` must be a registered backbone, but got 'ResNet50'. Did you mean",
        ),
        (_with("space", "backbones", []), "`backbones` must name at least one backbone, but got none."),
        (
            _with("space", "schemes", ["tree"]),
            "`schemes` must be among binary, three, four, but got 'tree'. Did you mean 'three'?",
        ),
        (_with("space", "dropuot", 0.1), "The search space has no parameter 'dropuot'. Did you mean 'dropout'?"),
        (_with("training", "epochs", 3), "The training settings have no field 'epochs'. Did you mean"),
        (
            _with("training", "pruner", "medain"),
            "`pruner` must be one of percentile, median, hyperband, none, but got 'medain'. Did you mean",
        ),
        (_with("training", "max_epochs", 0), "`max_epochs >= 1` must hold, but got max_epochs=0."),
        (
            _with("training", "warmup_epochs", 3),
            "`0 <= warmup_epochs < max_epochs` must hold, but got (warmup_epochs=3, max_epochs=3).",
        ),
        (
            {"space": {**BASE["space"], "backbones": ["InceptionV3"]}, "training": {"image_size": 64}},
            "`image_size >= 75` must hold for InceptionV3, but got image_size=64.",
        ),
        (
            {"space": {k: v for k, v in BASE["space"].items() if k != "schemes"}},
            "The search space must set 'schemes', but it is missing.",
        ),
        (_with("training", "folds", 0), "`folds >= 2` (or 1 for no cross-validation) must hold, but got folds=0."),
        (_with("training", "target_specificity", 1.0), "`0 < target specificity < 1` must hold, but got 1.0."),
        (_with("training", "target_sensitivity", 0.0), "`0 < target sensitivity < 1` must hold, but got 0.0."),
        (
            {
                **_with("training", "target_sensitivity", 0.9),
                "training": {"target_specificity": 0.95, "target_sensitivity": 0.9},
            },
            "exactly one of `target_specificity` and `target_sensitivity` must hold, but got "
            "(target_specificity=0.95, target_sensitivity=0.9).",
        ),
    ],
)
def test_invalid_spaces_are_refused(data: dict[str, Any], message: str) -> None:
    with pytest.raises(SearchError) as info:
        SearchSpace.from_dict(data).check()
    assert str(info.value).startswith(message)


def test_config_file_errors(tmp_path: Path) -> None:
    with pytest.raises(
        SearchError, match=r"The config file must be an existing TOML file, but '.*nope.toml' does not exist\."
    ):
        load_space(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[space\nbackbones = 1")
    with pytest.raises(SearchError, match=r"The config file must be valid TOML, but '.*bad.toml' is not"):
        load_space(bad)


def test_the_packaged_defaults_agree_everywhere() -> None:
    """One set of defaults: the TOML file, the training settings and a bare TrialConfig."""
    from dataclasses import fields

    from search.space import TrainingSettings, TrialConfig, load_space

    settings = load_space().training
    assert settings == TrainingSettings()
    config = TrialConfig("MobileNetV2", 1.0, 64, 0.1, 1e-3, 0.0, "three")
    shared = {f.name for f in fields(TrialConfig)} & {f.name for f in fields(TrainingSettings)}
    assert shared >= {"image_size", "max_epochs", "patience", "target_specificity", "folds"}
    assert {n: getattr(config, n) for n in shared} == {n: getattr(settings, n) for n in shared}


def test_a_sensitivity_target_replaces_the_default_specificity_one() -> None:
    space = SearchSpace.from_dict(_with("training", "target_sensitivity", 0.98)).check()
    assert space.training.target.kind == "sensitivity" and space.training.target.ranked_figure == "op_specificity"
    back = space.with_overrides(target_specificity=0.9).check()
    assert (back.training.target_specificity, back.training.target_sensitivity) == (0.9, None)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--folds", "1"], "`--folds >= 2` must hold (leave it out for one train/validation split), but got 1"),
        (["--target-specificity", "1.5"], "`0 < --target-specificity < 1` must hold, but got 1.5"),
        (["--target-sensitivity", "0"], "`0 < --target-sensitivity < 1` must hold, but got 0.0"),
        (["--focus-weight", "-1"], "`0 <= --focus-weight <= 100` must hold, but got '-1'"),
        (["--focus-weight", "nan"], "`0 <= --focus-weight <= 100` must hold, but got 'nan'"),
        (["--target-specificity", "0.9", "--target-sensitivity", "0.9"], "not allowed with argument"),
    ],
)
def test_bad_selection_flags_are_refused(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    from search.launch import parse_args

    with pytest.raises(SystemExit):
        parse_args(["--trials", "1", *argv])
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("percentile", "PercentilePruner"),
        ("median", "MedianPruner"),
        ("hyperband", "HyperbandPruner"),
        ("none", "NopPruner"),
    ],
)
def test_each_pruner_setting_makes_optunas_pruner(name: str, kind: str) -> None:
    from search._study import make_pruner
    from search.space import TrainingSettings

    pruner = make_pruner(TrainingSettings(pruner=name, pruner_percentile=75.0))
    assert type(pruner).__name__ == kind

"""The search space: ranges and choices from a TOML file, checked before any trial starts."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cxrdata import REGIONS, SCHEMES, did_you_mean
from search._errors import SearchError
from search.backbones import get_backbone
from search.space._config import TrialConfig
from search.space._training import PRUNERS, TrainingSettings

if TYPE_CHECKING:
    import optuna

__all__ = ["DEFAULT_SPACE_FILE", "PRUNERS", "Range", "SearchSpace", "TrainingSettings", "load_space"]

DEFAULT_SPACE_FILE = Path(__file__).with_name("default.toml")


@dataclass(frozen=True)
class Range:
    """A numeric range; ``low == high`` fixes the value."""

    low: float
    high: float
    log: bool = False
    step: float | None = None

    def check(self, name: str, lowest: float, highest: float, integer: bool = False) -> None:
        if not self.low <= self.high:
            raise SearchError(f"`low <= high` must hold for {name}, but got (low={self.low}, high={self.high}).")
        if not (lowest <= self.low and self.high <= highest):
            raise SearchError(
                f"{name} must lie within [{lowest}, {highest}], but got (low={self.low}, high={self.high})."
            )
        if self.log and self.low <= 0:
            raise SearchError(f"`low > 0` must hold for the log-scaled {name}, but got low={self.low}.")
        if self.log and self.step is not None:
            raise SearchError(f"{name} may have `log` or `step`, not both, but got log=true and step={self.step}.")
        if self.step is not None and self.step <= 0:
            raise SearchError(f"`step > 0` must hold for {name}, but got step={self.step}.")
        if integer and not (float(self.low).is_integer() and float(self.high).is_integer()):
            raise SearchError(f"{name} takes whole numbers, but got (low={self.low}, high={self.high}).")


# Absolute bounds of every searched number: (lowest, highest, integer).
_BOUNDS: dict[str, tuple[float, float, bool]] = {
    "freeze_depth": (0.0, 1.0, False),
    "head_width": (1, 8192, True),
    "dropout": (0.0, 0.95, False),
    "learning_rate": (1e-7, 1.0, False),
    "augment_strength": (0.0, 1.0, False),
    "focus_weight": (0.0, 100.0, False),
}
# Parameters a space file may leave out (files written before they existed), with their value then.
_OPTIONAL = {"focus_weight": 0.0}


@dataclass(frozen=True)
class SearchSpace:
    """Choices and ranges of the searched parameters, plus the study's training settings."""

    backbones: tuple[str, ...]
    schemes: tuple[str, ...]
    freeze_depth: Range
    head_width: Range
    dropout: Range
    learning_rate: Range
    augment_strength: Range
    # What part of each X-ray the model sees (cxrdata.REGIONS); spaces written before it see all.
    regions: tuple[str, ...] = ("full",)
    # Weight of the training penalty on COVID Grad-CAM energy outside the lungs (search.train.FocusTraining).
    focus_weight: Range = Range(0.0, 0.0)
    training: TrainingSettings = field(default_factory=TrainingSettings)

    def check(self) -> SearchSpace:
        """Reject an invalid space before any trial starts; return self."""
        if not self.backbones:
            raise SearchError("`backbones` must name at least one backbone, but got none.")
        for name in self.backbones:
            get_backbone(name)
        if not self.schemes:
            raise SearchError("`schemes` must name at least one class scheme, but got none.")
        for scheme in self.schemes:
            if scheme not in SCHEMES:
                raise SearchError(
                    f"`schemes` must be among {', '.join(SCHEMES)}, but got {scheme!r}.{did_you_mean(scheme, SCHEMES)}"
                )
        if not self.regions:
            raise SearchError("`regions` must name at least one input region, but got none.")
        for region in self.regions:
            if region not in REGIONS:
                hint = did_you_mean(region, REGIONS)
                raise SearchError(f"`regions` must be among {', '.join(REGIONS)}, but got {region!r}.{hint}")
        for name, (lowest, highest, integer) in _BOUNDS.items():
            getattr(self, name).check(name, lowest, highest, integer)
        self.training.check()
        too_small = [b for b in self.backbones if get_backbone(b).min_size > self.training.image_size]
        if too_small:
            need = max(get_backbone(b).min_size for b in too_small)
            size = self.training.image_size
            names = ", ".join(too_small)
            raise SearchError(f"`image_size >= {need}` must hold for {names}, but got image_size={size}.")
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SearchSpace:
        space = dict(data.get("space", data))
        training = dict(data.get("training", space.pop("training", {})))
        unknown = set(space) - {f for f in cls.__dataclass_fields__ if f != "training"}
        if unknown:
            name = sorted(unknown)[0]
            raise SearchError(
                f"The search space has no parameter {name!r}.{did_you_mean(name, cls.__dataclass_fields__)}"
            )
        if "target_sensitivity" in training and "target_specificity" not in training:
            training["target_specificity"] = None  # a sensitivity target replaces the default one
        unknown = set(training) - set(TrainingSettings.__dataclass_fields__)
        if unknown:
            name = sorted(unknown)[0]
            hint = did_you_mean(name, TrainingSettings.__dataclass_fields__)
            raise SearchError(f"The training settings have no field {name!r}.{hint}")
        try:
            return cls(
                backbones=tuple(space["backbones"]),
                schemes=tuple(space["schemes"]),
                regions=tuple(space.get("regions", ("full",))),
                training=TrainingSettings(**training),
                **{
                    name: _range(name, space[name] if name not in _OPTIONAL else space.get(name, _OPTIONAL[name]))
                    for name in _BOUNDS
                },
            )
        except KeyError as exc:
            raise SearchError(f"The search space must set {exc.args[0]!r}, but it is missing.") from None

    def with_overrides(
        self,
        *,
        backbones: Sequence[str] | None = None,
        schemes: Sequence[str] | None = None,
        regions: Sequence[str] | None = None,
        focus_weight: float | None = None,
        **training: Any,
    ) -> SearchSpace:
        """A copy with command-line overrides applied (``None`` leaves a value alone)."""
        settings = replace(self.training, **{k: v for k, v in training.items() if v is not None})
        if training.get("target_sensitivity") is not None:
            settings = replace(settings, target_specificity=None)  # one target replaces the other
        elif training.get("target_specificity") is not None:
            settings = replace(settings, target_sensitivity=None)
        if training.get("max_epochs") is not None:
            # A shorter budget from the command line caps the warm-up rather than failing on it.
            settings = replace(settings, warmup_epochs=min(settings.warmup_epochs, settings.max_epochs - 1))
        return replace(
            self,
            backbones=tuple(backbones) if backbones else self.backbones,
            schemes=tuple(schemes) if schemes else self.schemes,
            regions=tuple(regions) if regions else self.regions,
            focus_weight=self.focus_weight if focus_weight is None else Range(focus_weight, focus_weight),
            training=settings,
        )

    def suggest(self, trial: optuna.Trial, *, weights: str, seed: int) -> TrialConfig:
        """Draw one :class:`TrialConfig` from the space."""
        t = self.training
        return TrialConfig(
            backbone=trial.suggest_categorical("backbone", list(self.backbones)),
            freeze_depth=_suggest_float(trial, "freeze_depth", self.freeze_depth),
            head_width=int(
                trial.suggest_int(
                    "head_width",
                    int(self.head_width.low),
                    int(self.head_width.high),
                    log=self.head_width.log,
                    step=int(self.head_width.step or 1),
                )
            ),
            dropout=_suggest_float(trial, "dropout", self.dropout),
            learning_rate=_suggest_float(trial, "learning_rate", self.learning_rate),
            augment_strength=_suggest_float(trial, "augment_strength", self.augment_strength),
            scheme=trial.suggest_categorical("scheme", list(self.schemes)),
            input_region=trial.suggest_categorical("input_region", list(self.regions)),
            focus_weight=_suggest_float(trial, "focus_weight", self.focus_weight),
            image_size=t.image_size,
            batch_size=t.batch_size,
            max_epochs=t.max_epochs,
            patience=t.patience,
            warmup_epochs=t.warmup_epochs,
            fine_tune_lr_factor=t.fine_tune_lr_factor,
            crop=t.crop,
            weights=weights,
            seed=seed + trial.number,
            target_specificity=t.target_specificity,
            target_sensitivity=t.target_sensitivity,
            folds=t.folds,
        )


def _suggest_float(trial: optuna.Trial, name: str, r: Range) -> float:
    return float(trial.suggest_float(name, r.low, r.high, log=r.log, step=r.step))


def _range(name: str, value: Any) -> Range:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return Range(float(value), float(value))
    if isinstance(value, Mapping):
        extra = set(value) - {"low", "high", "log", "step"}
        if extra or "low" not in value or "high" not in value:
            raise SearchError(
                f"{name} must be a number or a table {{low, high, log?, step?}}, but got {dict(value)!r}."
            )
        step = value.get("step")
        return Range(float(value["low"]), float(value["high"]), bool(value.get("log", False)), step and float(step))
    raise SearchError(f"{name} must be a number or a table {{low, high, log?, step?}}, but got {value!r}.")


def load_space(path: str | Path | None = None) -> SearchSpace:
    """Read a TOML search space (the packaged default when ``path`` is None), unchecked."""
    file = Path(path) if path is not None else DEFAULT_SPACE_FILE
    if not file.is_file():
        raise SearchError(f"The config file must be an existing TOML file, but '{file}' does not exist.")
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SearchError(f"The config file must be valid TOML, but '{file}' is not ({exc}).") from None
    return SearchSpace.from_dict(data)

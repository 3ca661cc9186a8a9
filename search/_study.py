"""Creating, loading and checking a study. The study carries everything a worker needs.

A study's user attributes hold the search space, the dataset path and fingerprint, the
weights and the seeds, so a worker needs only the storage URL, the study name and (where
the data lives elsewhere on its machine) a data path.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass
from typing import Any

import optuna

from search._engines import KERAS_TUNER
from search._errors import SearchError
from search._settings import settings as current_settings
from search.space import SearchSpace, TrainingSettings
from search.store import Ranking, mask_url

__all__ = [
    "FOCUS_CONSTRAINT",
    "HIDDEN_CONSTRAINT",
    "StudyInfo",
    "check_engine_constraints",
    "check_study_exists",
    "create_study",
    "focus_constraint",
    "hidden_constraint",
    "load_study",
    "make_pruner",
    "make_storage",
    "study_ranking",
]

# Heartbeats and stale-trial retry are marked experimental in Optuna but are its supported
# way to recover a killed worker's trial; the warning would repeat in every worker.
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


@dataclass(frozen=True)
class StudyInfo:
    """What a study was created with (stored in its user attributes)."""

    space: SearchSpace
    data_path: str
    dataset_fingerprint: str
    weights: str
    seed: int
    split_seed: int
    artifacts: str
    cache_dir: str
    lung_model: str | None = None  # a segmenter (.keras) for images without dataset masks

    @property
    def ranking(self) -> Ranking:
        """The study's default ranking: the figure its operating target leaves free, first."""
        return study_ranking(self.space)

    def to_attrs(self) -> dict[str, Any]:
        return {
            "cxr_space": json.dumps(self.space.to_dict()),
            "cxr_data_path": self.data_path,
            "cxr_dataset_fingerprint": self.dataset_fingerprint,
            "cxr_weights": self.weights,
            "cxr_seed": self.seed,
            "cxr_split_seed": self.split_seed,
            "cxr_artifacts": self.artifacts,
            "cxr_cache_dir": self.cache_dir,
            "cxr_lung_model": self.lung_model,
        }

    @classmethod
    def from_attrs(cls, attrs: dict[str, Any]) -> StudyInfo:
        if "cxr_space" not in attrs:
            raise SearchError(
                "A study must have been created by search.launch (its search space is written last), but this one "
                "has no search space yet: it may still be starting; try again in a moment."
            )
        return cls(
            space=SearchSpace.from_dict(json.loads(attrs["cxr_space"])),
            data_path=attrs["cxr_data_path"],
            dataset_fingerprint=attrs["cxr_dataset_fingerprint"],
            weights=attrs["cxr_weights"],
            seed=int(attrs["cxr_seed"]),
            split_seed=int(attrs["cxr_split_seed"]),
            artifacts=attrs["cxr_artifacts"],
            cache_dir=attrs["cxr_cache_dir"],
            lung_model=attrs.get("cxr_lung_model"),
        )


def study_ranking(space: SearchSpace) -> Ranking:
    """The default ranking of a study over ``space``: sensitivity at the target specificity (or
    specificity at the target sensitivity), then lung focus, then COVID AUC; with constraints
    (lung focus, COVID AUC with the lungs hidden), the trials that meet them before all others."""
    t = space.training
    return Ranking.for_figure(
        t.target.ranked_figure, min_lung_focus_ratio=t.min_lung_focus_ratio, max_hidden_lungs_auc=t.max_hidden_lungs_auc
    )


# The lung-focus constraint, as Optuna stores it on a trial (``trial.constraints[FOCUS_CONSTRAINT]``).
#
# Optuna's constrained optimisation: a trial whose constraint values are all <= 0 is feasible.
# TPE splits the trials it has seen into "good" and "bad" ones, feasible completed trials (by
# validation loss) first, then pruned ones, then infeasible ones (smallest violation first), so
# it learns to avoid the region of infeasible trials; ``study.best_trial`` is the best feasible
# one. Optuna 5 takes constraints from ``Trial.set_constraint`` in the objective (the
# ``constraints_func`` of its samplers is deprecated there, to be removed in Optuna 7), so the
# value is set by the objective (``search._objective``) of whichever worker runs the trial, from
# the study's stored search space: every worker, on any machine, applies the same constraint,
# and any sampler reads it. The single objective and the pruner stay as they are.
FOCUS_CONSTRAINT = "lung_focus_ratio"


def focus_constraint(ratio: float | None, minimum: float) -> float:
    """The constraint value of a completed trial: ``minimum - ratio`` (feasible when <= 0).

    A trial whose lung focus could not be measured (no lung mask on its validation images, or
    every heatmap blank) is infeasible and counts as worse than any measured trial:
    ``minimum + 1``, as if its ratio were -1. The constraint asks for evidence that the model
    looks at the lungs, and such a trial has none; launch refuses the option on data without
    any lung mask or segmenter, where every trial would be unmeasured. Pruned trials get no
    value (they have no focus yet): Optuna reads a trial without constraint values as feasible,
    so TPE judges them by their last validation loss, as without the constraint.
    """
    if ratio is None or math.isnan(ratio):
        return float(minimum) + 1.0
    return float(minimum) - float(ratio)


# The lungs-hidden constraint, stored beside the lung-focus one: Optuna reads a trial as
# feasible only when every constraint value is <= 0.
HIDDEN_CONSTRAINT = "hidden_lungs_auc"


def hidden_constraint(auc: float | None, maximum: float) -> float:
    """The constraint value of a completed trial: ``max(auc, 1 - auc) - maximum`` (feasible when
    <= 0; an AUC below chance separates the classes as well as its mirror above it).

    A trial whose COVID AUC with the lungs hidden could not be measured (no lung mask on its
    validation images, or one class among them) is infeasible and counts as worse than any
    measured trial: ``2 - maximum``, as if its AUC were 2. As with lung focus, the constraint
    asks for evidence (that the decision needs the lungs) and such a trial has none.
    """
    if auc is None or math.isnan(auc):
        return 2.0 - float(maximum)
    return max(float(auc), 1.0 - float(auc)) - float(maximum)


def check_engine_constraints(space: SearchSpace, engine: str) -> None:
    """Refuse a constraint on an engine that cannot apply it (KerasTuner's oracles take no constraints)."""
    t = space.training
    constraints = {"min_lung_focus_ratio": t.min_lung_focus_ratio, "max_hidden_lungs_auc": t.max_hidden_lungs_auc}
    for name, value in constraints.items():
        if engine == KERAS_TUNER and value is not None:
            raise SearchError(
                f"`{name}` needs the Optuna engine (KerasTuner's oracles take no constraints), but got "
                f"{name}={value} with --engine keras-tuner; drop it or use --engine optuna."
            )


def make_storage(url: str) -> optuna.storages.RDBStorage:
    """Optuna's RDB storage with heartbeats: a killed worker's trial is failed and retried.

    A worker beats every interval; a trial whose worker missed the grace period is failed and
    retried by the next worker that checks (``CXR_HEARTBEAT_*``; tests use seconds).
    """
    env = current_settings()
    try:
        return optuna.storages.RDBStorage(
            url,
            heartbeat_interval=env.heartbeat_interval_s,
            grace_period=env.heartbeat_grace_s,
            heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=2),
            engine_kwargs={"pool_pre_ping": True} if not url.startswith("sqlite") else None,
        )
    except Exception as exc:  # Optuna wraps connection and URL errors in several types
        raise SearchError(f"The study database must be reachable, but {mask_url(url)} is not ({exc}).") from None


def make_pruner(settings: TrainingSettings) -> optuna.pruners.BasePruner:
    if settings.pruner == "percentile":
        return optuna.pruners.PercentilePruner(
            settings.pruner_percentile,
            n_startup_trials=settings.pruner_startup_trials,
            n_warmup_steps=settings.pruner_warmup_epochs,
        )
    if settings.pruner == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=settings.pruner_startup_trials, n_warmup_steps=settings.pruner_warmup_epochs
        )
    if settings.pruner == "hyperband":
        # With folds a trial reports max_epochs steps per fold (see search._folds).
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=settings.max_epochs * settings.folds)
    return optuna.pruners.NopPruner()


def _sampler(seed: int) -> optuna.samplers.BaseSampler:
    # Constant liar: parallel workers treat running trials as bad, so they spread out. No
    # constraints_func: a lung-focus constraint is set on each trial by the objective and read
    # from there by TPE (see FOCUS_CONSTRAINT), so every worker's sampler is built the same way.
    return optuna.samplers.TPESampler(seed=seed, constant_liar=True, n_startup_trials=5)


def create_study(storage: optuna.storages.RDBStorage, name: str, info: StudyInfo) -> optuna.Study:
    """Create the study, or resume it when the same name exists with the same data and space."""
    study = optuna.create_study(
        storage=storage,
        study_name=name,
        direction="minimize",
        sampler=_sampler(info.seed),
        pruner=make_pruner(info.space.training),
        load_if_exists=True,
    )
    attrs = study.user_attrs
    if "cxr_space" not in attrs:
        # One key at a time (Optuna has no batch write): the space last, so a study that has it
        # has everything (see StudyInfo.from_attrs).
        for key, value in sorted(info.to_attrs().items(), key=lambda item: item[0] == "cxr_space"):
            study.set_user_attr(key, value)
        return study
    stored = StudyInfo.from_attrs(attrs)
    if stored.dataset_fingerprint != info.dataset_fingerprint:
        raise SearchError(
            f"A resumed study must see the same dataset, but study {name!r} was created on data with fingerprint "
            f"{stored.dataset_fingerprint} and {info.data_path} has {info.dataset_fingerprint}; use a new --study name."
        )
    if stored.space != info.space:
        raise SearchError(
            f"A resumed study must keep its search space, but the space given for study {name!r} differs from "
            f"the one it was created with; drop --config and the overrides, or use a new --study name."
        )
    return study


def check_study_exists(storage: optuna.storages.BaseStorage | str, name: str) -> None:
    """Fail with the nearest study names when ``name`` is not in the database."""
    names = [s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)]
    if name not in names:
        from cxrdata import did_you_mean

        raise SearchError(
            f"The study must exist in the database, but there is no study {name!r}.{did_you_mean(name, names)}"
        )


def load_study(storage: optuna.storages.RDBStorage, name: str, worker_index: int = 0) -> tuple[optuna.Study, StudyInfo]:
    """Join an existing study as a worker, with a sampler seeded apart from the other workers."""
    check_study_exists(storage, name)
    probe = optuna.load_study(study_name=name, storage=storage)
    info = StudyInfo.from_attrs(probe.user_attrs)
    study = optuna.load_study(
        study_name=name,
        storage=storage,
        sampler=_sampler(info.seed + 1000 * (worker_index + 1)),
        pruner=make_pruner(info.space.training),
    )
    return study, info

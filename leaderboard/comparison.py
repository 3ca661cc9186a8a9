"""Trials and studies side by side, as DataFrames: pure functions, no Streamlit, no TensorFlow.

The Compare page puts 2 to 4 trials of one study next to each other (configurations with the
differences marked, figures with their intervals, the rows of each split in its own column, the
Grad-CAM overlays of the same validation images in one grid); the Studies page puts two studies
next to each other (best-so-far curves, distributions, Pareto fronts).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from leaderboard.data import LABELS, RANKABLE, TrialDetail, pareto_front, split_label

__all__ = [
    "COMPARE_MAX",
    "COMPARE_MIN",
    "METRIC_FIGURES",
    "OverlayRow",
    "StudyGroup",
    "best_so_far",
    "config_diff",
    "interval_frame",
    "metric_table",
    "overlay_grid",
    "overlay_name",
    "parse_group",
    "parse_groups",
    "parse_trial",
    "parse_trials",
    "split_tables",
    "study_summary",
    "trial_label",
    "trial_link",
]

COMPARE_MIN, COMPARE_MAX = 2, 4
Trial = tuple[str, int]  # (engine, number): both engines number their trials from 0

# The figures compared, in this order; the ones with a 95% interval show it beside the value.
METRIC_FIGURES = (
    "op_sensitivity", "op_specificity", "covid_threshold", "covid_auc", "covid_sensitivity", "covid_specificity",
    "covid_ppv", "covid_npv", "lung_focus", "lung_focus_ratio", "pointing_game", "hidden_lungs_auc", "roc_auc",
    "accuracy", "balanced_accuracy", "loss",
)  # fmt: skip
_INTERVALS = ("op_sensitivity", "op_specificity", "covid_sensitivity", "covid_specificity")


def trial_label(trial: Trial) -> str:
    """``3``, or ``3 (keras-tuner)`` for the other engine's trial."""
    engine, number = trial
    return f"{number}" if engine == "optuna" else f"{number} ({engine})"


def trial_link(trial: Trial) -> str:
    """A trial as the address names it: ``3``, or ``keras-tuner:3``."""
    engine, number = trial
    return str(number) if engine == "optuna" else f"{engine}:{number}"


_LINK = re.compile(r"^(?:(?P<engine>[A-Za-z][A-Za-z0-9_-]{0,31}):)?(?P<number>\d{1,9})$")


def parse_trial(text: str) -> Trial | None:
    """``3`` → ("optuna", 3); ``keras-tuner:3`` → ("keras-tuner", 3); anything else None."""
    found = _LINK.match(text.strip())
    if found is None:
        return None
    return found["engine"] or "optuna", int(found["number"])


def parse_trials(text: str | None, known: Collection[Trial], study: str) -> list[Trial]:
    """The trials named by the address's ``trials=3,7,9``: 2 to 4 different trials of ``study``
    with stored results. Anything else is a :class:`ValueError` of one sentence."""
    raw = [part for part in (text or "").split(",") if part.strip()]
    example = "e.g. trials=3,7,9"
    if not COMPARE_MIN <= len(raw) <= COMPARE_MAX:
        raise ValueError(
            f"`trials` must list {COMPARE_MIN} to {COMPARE_MAX} trials separated by commas ({example}), "
            f"but got {len(raw)}: {text or ''!r}."
        )
    trials = []
    for part in raw:
        trial = parse_trial(part)
        if trial is None:
            raise ValueError(
                f"`trials` must be trial numbers (or ENGINE:NUMBER) separated by commas ({example}), "
                f"but got {part.strip()!r}."
            )
        if trial in trials:
            raise ValueError(f"`trials` must name different trials, but got trial {trial_link(trial)} twice.")
        trials.append(trial)
    missing = [t for t in trials if t not in known]
    if missing:
        raise ValueError(
            f"`trials` must name trials of study {study!r} with stored results, but trial "
            f"{trial_link(missing[0])} has none."
        )
    return trials


def _plain(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return "—" if value is None else str(value)
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def config_diff(configs: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """Each trial's configuration side by side (a column per trial, values as text), the
    parameters that differ first and marked in the ``differs`` column."""
    names: list[str] = []
    for config in configs.values():
        names.extend(k for k in config if k not in names)
    table = pd.DataFrame(
        {label: [_plain(config.get(name)) for name in names] for label, config in configs.items()}, index=names
    )
    table.index.name = "parameter"
    table.insert(0, "differs", table.nunique(axis=1) > 1 if len(configs) else False)
    return table.sort_values("differs", ascending=False, kind="stable").reset_index()


def _number(value: Any) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if np.isnan(number) else number


def _with_interval(metrics: Mapping[str, Any], name: str) -> str:
    value = _number(metrics.get(name))
    if value is None:
        return "—"
    low, high = _number(metrics.get(f"{name}_low")), _number(metrics.get(f"{name}_high"))
    if name in _INTERVALS and low is not None and high is not None:
        return f"{value:.3f} [{low:.3f}, {high:.3f}]"
    return f"{value:.4f}" if name == "covid_threshold" else f"{value:.3f}"


def metric_table(details: Mapping[str, TrialDetail]) -> pd.DataFrame:
    """Validation figures of each trial side by side (text: the value, then its 95% interval in
    brackets where it has one), plus epochs, wall time and parameters."""
    rows: dict[str, list[str]] = {}
    for name in METRIC_FIGURES:
        label = LABELS.get(name, name) + (" [95% CI]" if name in _INTERVALS else "")
        rows[label] = [_with_interval(d.metrics, name) for d in details.values()]
    rows["epochs trained"] = [str(len(d.epochs)) for d in details.values()]
    return pd.DataFrame(rows, index=list(details)).T.rename_axis("figure").reset_index()


def interval_frame(details: Mapping[str, TrialDetail]) -> pd.DataFrame:
    """One row per (trial, figure with an interval): value, low, high; for the interval chart."""
    rows = []
    for label, detail in details.items():
        for name in _INTERVALS:
            value = _number(detail.metrics.get(name))
            if value is None:
                continue
            low, high = _number(detail.metrics.get(f"{name}_low")), _number(detail.metrics.get(f"{name}_high"))
            rows.append(
                {
                    "trial": label,
                    "figure": LABELS.get(name, name),
                    "value": value,
                    "low": value if low is None else low,
                    "high": value if high is None else high,
                }
            )
    return pd.DataFrame(rows, columns=["trial", "figure", "value", "low", "high"])


def split_tables(details: Mapping[str, TrialDetail]) -> dict[str, pd.DataFrame]:
    """Per row kind (validation, then test, then each external set: the column headers of
    :func:`leaderboard.data.split_label`), a table of figures with a column per trial that has
    such a row. Only validation ranks; the headers of the others say so."""
    kinds: list[str] = []
    for detail in details.values():
        kinds.extend(c for c in detail.by_split.columns if c not in kinds)
    order = {split_label("val"): 0, split_label("test"): 1}
    kinds.sort(key=lambda k: (order.get(k, 2), k))
    tables = {}
    for kind in kinds:
        columns = {label: detail.by_split[kind] for label, detail in details.items() if kind in detail.by_split.columns}
        tables[kind] = pd.DataFrame(columns).dropna(how="all")
    return tables


def overlay_name(filename: str) -> str:
    """The validation image an overlay shows: ``gradcam-COVID-12.png`` → ``COVID-12``."""
    name = filename.removeprefix("gradcam-")
    return name[: -len(".png")] if name.endswith(".png") else name


@dataclass(frozen=True)
class OverlayRow:
    """One validation image of the grid: its name and, per trial, the overlay's artifact id (or None)."""

    image: str
    artifacts: dict[str, str | None]

    @property
    def shared(self) -> bool:
        return all(a is not None for a in self.artifacts.values())


def overlay_grid(overlays: Mapping[str, Sequence[Mapping[str, Any]]]) -> list[OverlayRow]:
    """The Grad-CAM overlays of several trials as a grid: a row per validation image (matched by
    file name: trials of the same scheme and split store the same images), a column per trial.
    Images every trial has come first, in the first trial's order; then the others."""
    order: list[str] = []
    by_trial: dict[str, dict[str, str]] = {}
    for label, artifacts in overlays.items():
        mine = by_trial.setdefault(label, {})
        for artifact in artifacts:
            if artifact.get("kind") != "gradcam":
                continue
            image = overlay_name(str(artifact.get("filename", "")))
            mine.setdefault(image, str(artifact.get("artifact_id")))
            if image not in order:
                order.append(image)
    rows = [OverlayRow(image, {label: by_trial[label].get(image) for label in overlays}) for image in order]
    return sorted(rows, key=lambda r: not r.shared)  # stable: the first trial's order within each group


# Studies side by side ------------------------------------------------------------------------


@dataclass(frozen=True)
class StudyGroup:
    """A study, or one engine's trials of it (a study searched by Optuna and by KerasTuner)."""

    study: str
    engine: str | None = None

    @property
    def label(self) -> str:
        return self.study if self.engine is None else f"{self.study} ({self.engine})"

    @property
    def link(self) -> str:
        return self.study if self.engine is None else f"{self.study}@{self.engine}"


def parse_group(text: str, studies: Collection[str], engines: Mapping[str, Collection[str]]) -> StudyGroup:
    """``NAME`` (a whole study) or ``NAME@ENGINE`` (one engine's trials of it), as the Studies
    page's address names them; a :class:`ValueError` of one sentence otherwise."""
    text = text.strip()
    if text in studies:
        return StudyGroup(text)
    study, _, engine = text.rpartition("@")
    if study in studies and engine in engines.get(study, ()):
        return StudyGroup(study, engine)
    raise ValueError(
        f"`studies` must name studies of this database (NAME, or NAME@ENGINE for one engine's trials), "
        f"but got {text!r}."
    )


def parse_groups(
    text: str | None, studies: Collection[str], engines: Mapping[str, Collection[str]]
) -> list[StudyGroup]:
    """The address's ``studies=A,B``: exactly two groups (:func:`parse_group`)."""
    raw = [part for part in (text or "").split(",") if part.strip()]
    if len(raw) != 2:
        raise ValueError(f"`studies` must name two studies separated by a comma (e.g. studies=A,B), but got {text!r}.")
    return [parse_group(part, studies, engines) for part in raw]


def best_so_far(frame: pd.DataFrame, figure: str) -> pd.DataFrame:
    """The best ``figure`` among the completed trials finished so far, by trial (in the order they
    were recorded) and by wall time since the study's first trial (hours). Unknown values never
    improve the best; a study without any gives an empty frame."""
    higher = RANKABLE.get(figure, True)
    done = frame.sort_values("created_at", kind="stable").reset_index(drop=True)
    start = pd.to_datetime(done["created_at"], utc=True).min() if len(done) else None
    value = done[figure].where(done["state"] == "COMPLETE").astype(float)
    best = value.cummax() if higher else value.cummin()
    out = pd.DataFrame(
        {
            "trials": np.arange(1, len(done) + 1),
            "hours": (pd.to_datetime(done["created_at"], utc=True) - start).dt.total_seconds() / 3600.0
            if start is not None
            else [],
            "best": best,
            "trial_number": done["trial_number"],
        }
    )
    return out.dropna(subset=["best"]).reset_index(drop=True)


def study_summary(frames: Mapping[str, pd.DataFrame], figure: str) -> pd.DataFrame:
    """Per study: trials by state, the best and median ``figure`` of its completed trials, lung
    focus, the size of its Pareto front (``figure`` against lung focus) and its wall time."""
    higher = RANKABLE.get(figure, True)
    rows = {}
    for label, frame in frames.items():
        done = frame[frame["state"] == "COMPLETE"]
        values = done[figure].dropna()
        created = pd.to_datetime(frame["created_at"], utc=True)
        front = pareto_front(done, figure, "lung_focus") if len(done) else pd.Series(dtype=bool)
        rows[label] = {
            "trials": len(frame),
            "completed": len(done),
            "pruned": int((frame["state"] == "PRUNED").sum()),
            "failed": int((frame["state"] == "FAIL").sum()),
            f"best {LABELS.get(figure, figure)}": (values.max() if higher else values.min()) if len(values) else None,
            f"median {LABELS.get(figure, figure)}": values.median() if len(values) else None,
            "median lung focus": done["lung_focus"].median() if done["lung_focus"].notna().any() else None,
            "Pareto front (trials)": int(front.sum()) if done["lung_focus"].notna().any() else None,
            "hours": (created.max() - created.min()).total_seconds() / 3600.0 if len(frame) else None,
        }
    return pd.DataFrame(rows)

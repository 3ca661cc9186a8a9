"""The results store as DataFrames for the leaderboard: pure functions, no TensorFlow, no Streamlit.

Everything that can be done in SQL is (ranking, filtering, pagination), so a study of 10,000
trials costs one indexed query per page.
"""

from __future__ import annotations

import json
import re
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
import pandas as pd
from sqlalchemy import Engine, QueuePool, create_engine, func, select
from sqlalchemy.orm import Session

from search.store import (
    DEFAULT_RANKING,
    DIRECTIONS,
    ArtifactRow,
    EpochRow,
    Ranking,
    TrialRow,
    decides_without_lungs,
    focus_like_flat_map,
    parse_url,
)

__all__ = [
    "LABELS",
    "RANKABLE",
    "Filters",
    "TrialDetail",
    "all_trials",
    "config_table",
    "escape_markdown",
    "filter_choices",
    "pareto_front",
    "ranking",
    "ranking_csv",
    "read_only_engine",
    "read_only_url",
    "rule_text",
    "split_label",
    "studies",
    "study_artifacts",
    "study_ranking",
    "study_version",
    "top_line",
    "trial_detail",
    "trial_keys",
    "with_verdicts",
]

LABELS: dict[str, str] = {
    "op_sensitivity": "COVID sensitivity @ target",
    "op_sensitivity_low": "COVID sensitivity @ target, 95% lower bound",
    "op_sensitivity_high": "COVID sensitivity @ target, 95% upper bound",
    "op_specificity": "COVID specificity @ target",
    "op_specificity_low": "COVID specificity @ target, 95% lower bound",
    "op_specificity_high": "COVID specificity @ target, 95% upper bound",
    "covid_threshold": "COVID threshold",
    "covid_sensitivity": "COVID sensitivity",
    "covid_sensitivity_low": "COVID sensitivity, 95% lower bound",
    "covid_sensitivity_high": "COVID sensitivity, 95% upper bound",
    "lung_focus": "lung focus",
    "input_region": "input region",
    "lung_focus_ratio": "lung focus / lung area",
    "pointing_game": "Grad-CAM peak in lungs",
    "hidden_lungs_auc": "COVID AUC with the lungs hidden (0.5: cannot tell without the lungs)",
    "roc_auc": "validation AUC",
    "covid_auc": "COVID AUC",
    "covid_specificity": "COVID specificity",
    "covid_specificity_low": "COVID specificity, 95% lower bound",
    "covid_specificity_high": "COVID specificity, 95% upper bound",
    "covid_ppv": "COVID PPV",
    "covid_npv": "COVID NPV",
    "accuracy": "accuracy",
    "balanced_accuracy": "balanced accuracy",
    "loss": "validation loss",
    "wall_time_s": "wall time",
    "params": "parameters",
}
# Columns a rule may sort on, and their direction (True: higher is better): the store's own.
RANKABLE: dict[str, bool] = DIRECTIONS
# The COVID figures first, so they are visible without scrolling; then focus, then the config.
TABLE_COLUMNS = (
    "trial_number", "engine", "state", "backbone", "scheme", "input_region",
    "op_sensitivity", "op_sensitivity_low", "op_sensitivity_high", "op_specificity", "covid_threshold",
    "covid_auc", "lung_focus", "lung_focus_ratio", "hidden_lungs_auc", "covid_sensitivity", "covid_sensitivity_low",
    "covid_sensitivity_high", "covid_specificity", "covid_ppv", "pointing_game", "roc_auc", "accuracy",
    "balanced_accuracy", "loss", "freeze_depth", "head_width", "dropout", "learning_rate", "augment_strength",
    "image_size", "op_target", "epochs_run", "wall_time_s", "params",
)  # fmt: skip


# A server-side default, so it holds for every transaction of the session; a
# ``SET SESSION CHARACTERISTICS`` sent by the client ran inside the driver's implicit
# transaction and was rolled back with it.
_PG_READ_ONLY = {"options": "-c default_transaction_read_only=on"}


def read_only_url(url: str) -> tuple[str, dict[str, Any]]:
    """The URL and engine arguments of a connection that cannot write.

    SQLite: the file opened by the sqlite3 module itself as a ``mode=ro`` URI with the path
    percent-encoded (through SQLAlchemy's URL a ``#`` or ``?`` in the path would end it and
    drop the mode). PostgreSQL: every transaction read-only. Give the leaderboard a
    SELECT-only role as well (see SECURITY.md): this guards against mistakes, a role against
    anyone.
    """
    parsed = parse_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = Path(parsed.database or "").resolve()
        if not path.is_file():
            raise FileNotFoundError(f"The results database must exist, but {path} does not.")
        uri = f"file:{quote(str(path))}?mode=ro"

        def connect() -> sqlite3.Connection:
            return sqlite3.connect(uri, uri=True, timeout=30, check_same_thread=False)

        return "sqlite://", {"creator": connect, "poolclass": QueuePool}
    return url, {"connect_args": dict(_PG_READ_ONLY), "pool_pre_ping": True}


def read_only_engine(url: str) -> Engine:
    """An engine that cannot write (see :func:`read_only_url`)."""
    ro_url, kwargs = read_only_url(url)
    return create_engine(ro_url, **kwargs)


# Markdown's inline syntax (and Streamlit's: $ for LaTeX, : for emoji and autolinks). Line-start
# syntax (lists, headings) cannot start mid-sentence once newlines are folded, so "." and "-"
# stay readable.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()<>#|~$:!])")


def escape_markdown(text: object) -> str:
    """``text`` shown literally in Markdown: a string from the database cannot become a link, an
    image that loads from a remote server, or formatting."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", " ".join(str(text).split()))


def studies(engine: Engine) -> list[str]:
    """Studies with results, most recently active first."""
    with Session(engine) as session:
        rows = session.execute(
            select(TrialRow.study_name, func.max(TrialRow.created_at).label("last"))
            .group_by(TrialRow.study_name)
            .order_by(func.max(TrialRow.created_at).desc())
        )
        return [r.study_name for r in rows]


@dataclass(frozen=True)
class Filters:
    """Empty tuples mean "all"."""

    backbones: tuple[str, ...] = ()
    schemes: tuple[str, ...] = ()
    regions: tuple[str, ...] = ()
    states: tuple[str, ...] = ("COMPLETE",)
    engines: tuple[str, ...] = ()


def filter_choices(engine: Engine, study: str) -> dict[str, list[str]]:
    out = {}
    with Session(engine) as session:
        for key, column in (
            ("backbones", TrialRow.backbone),
            ("schemes", TrialRow.scheme),
            ("regions", TrialRow.input_region),
            ("states", TrialRow.state),
            ("engines", TrialRow.engine),
        ):
            query = select(column).where(TrialRow.study_name == study, TrialRow.split == "val").distinct()
            out[key] = sorted(v for v in session.scalars(query) if v is not None)
    return out


def rule_text(ranking: Ranking) -> str:
    """The ranking rule in words, e.g. for the caption above the table."""
    parts = [f"{LABELS.get(c, c)} {'↓' if RANKABLE.get(c, True) else '↑'}" for c in ranking.keys]
    floor = ranking.min_specificity
    floor_text = f"; trials below argmax COVID specificity {floor:.2f} rank after the others" if floor > 0 else ""
    if ranking.constrained:
        floor_text += (
            f"; the study's constraint: trials that miss {ranking.constraint_text(' or ')} (or are unmeasured) "
            "rank after every trial that meets it"
        )
    return "Ranked by " + ", then ".join(parts) + f" (unknown values last{floor_text}; validation split only)."


def top_line(frame: pd.DataFrame) -> str:
    """The first row of a ranked page in one sentence (Markdown, its database strings escaped),
    with what could make it a trap."""
    if frame.empty:
        return "No trial matches the filters."
    top = frame.iloc[0]
    text = (
        f"Top-ranked: trial {int(top['trial_number'])} ({escape_markdown(top['backbone'])}, "
        f"{escape_markdown(top['scheme'])}): "
    )
    if not pd.isna(top.get("op_sensitivity")):
        text += (
            f"COVID sensitivity {_fmt(top['op_sensitivity'])} {_ci(top, 'op_sensitivity')} at specificity "
            f"{_fmt(top['op_specificity'])} (threshold {_fmt(top['covid_threshold'])}), "
        )
    else:
        text += f"COVID sensitivity {_fmt(top['covid_sensitivity'])} (argmax), "
    text += f"COVID AUC {_fmt(top['covid_auc'])}, lung focus {_fmt(top['lung_focus'])}"
    if top.get("infeasible", False):
        text += " — it misses the study's constraint, like every trial shown"
    if top["below_floor"]:
        text += " — below the specificity floor, like every trial shown"
    if top.get("review") == "shortcut":
        text += (
            f" — {escape_markdown(top.get('reviewer') or 'a reviewer')} marked it as reading a shortcut, so the "
            "default export never chooses it"
        )
    ratio = None if pd.isna(top["lung_focus_ratio"]) else float(top["lung_focus_ratio"])
    if focus_like_flat_map(ratio):
        text += (
            f" — its Grad-CAM evidence is no more in the lungs than a uniform map's "
            f"(lung focus / lung area {ratio:.2f}): check it for shortcuts"
        )
    hidden = top.get("hidden_lungs_auc")
    hidden = None if hidden is None or pd.isna(hidden) else float(hidden)
    if decides_without_lungs(hidden):
        text += (
            f" — with the lungs hidden it still tells COVID (AUC {hidden:.2f}, 0.5 is chance): part of its "
            "decision can come from outside the lungs (a search with `--regions lung_mask` rules that out)"
        )
    return text


def _ci(row: Any, name: str) -> str:
    low, high = row.get(f"{name}_low"), row.get(f"{name}_high")
    if low is None or high is None or pd.isna(low) or pd.isna(high):
        return ""
    return f"[95% CI {float(low):.2f}, {float(high):.2f}]"


def _fmt(value: Any) -> str:
    return "—" if value is None or pd.isna(value) else f"{float(value):.3f}"


def ranking(
    engine: Engine,
    study: str,
    *,
    rule: Ranking = DEFAULT_RANKING,
    filters: Filters = Filters(),
    page: int = 0,
    page_size: int = 50,
) -> tuple[pd.DataFrame, int]:
    """One page of the ranked table and the number of matching trials.

    Trials below the rule's specificity floor (a model calling everything COVID has argmax
    sensitivity 1.0) rank after all others and are marked in the ``below_floor`` column; under a
    study's constraints (lung focus, COVID AUC with the lungs hidden), trials that miss one rank
    after every trial that meets them and are marked in the ``infeasible`` column (False
    throughout without a constraint).
    """
    floor = rule.below_floor()
    conditions = [TrialRow.study_name == study, TrialRow.split == "val"]
    for values, column in (
        (filters.backbones, TrialRow.backbone),
        (filters.schemes, TrialRow.scheme),
        (filters.regions, TrialRow.input_region),
        (filters.states, TrialRow.state),
        (filters.engines, TrialRow.engine),
    ):
        if values:
            conditions.append(column.in_(values))
    columns = [
        *(getattr(TrialRow, c) for c in TABLE_COLUMNS),
        floor.label("below_floor"),
        rule.infeasible().label("infeasible"),
    ]
    with Session(engine) as session:
        total = session.scalar(select(func.count()).select_from(TrialRow).where(*conditions)) or 0
        rows = session.execute(
            select(*columns).where(*conditions).order_by(*rule.order_by()).offset(page * page_size).limit(page_size)
        ).all()
    frame = pd.DataFrame(rows, columns=[*TABLE_COLUMNS, "below_floor", "infeasible"])
    frame["below_floor"] = frame["below_floor"].astype(bool) & frame["covid_sensitivity"].notna()
    # A pruned or failed trial has no focus to judge: only completed ones are marked.
    frame["infeasible"] = frame["infeasible"].astype(bool) & (frame["state"] == "COMPLETE")
    frame.insert(0, "rank", range(page * page_size + 1, page * page_size + 1 + len(frame)))
    return frame, int(total)


def ranking_csv(
    engine: Engine,
    study: str,
    *,
    rule: Ranking = DEFAULT_RANKING,
    filters: Filters = Filters(),
    verdicts: pd.DataFrame | None = None,
) -> str:
    """Every trial matching ``filters``, in the rule's order, as CSV (the table's columns, all
    pages; with ``verdicts``, each trial's latest review and its reviewer as in the table)."""
    frame, _ = ranking(engine, study, rule=rule, filters=filters, page_size=2**31 - 1)
    if verdicts is not None:
        frame = with_verdicts(frame, verdicts)
    return frame.to_csv(index=False)


def with_verdicts(frame: pd.DataFrame, verdicts: pd.DataFrame) -> pd.DataFrame:
    """``frame`` (trials by ``engine`` and ``trial_number``) with ``review`` and ``reviewer`` columns
    after the trial number: each trial's latest verdict (``leaderboard.review.verdicts_frame``:
    engine, trial, verdict, reviewer), None where it has none."""
    columns = (verdicts[c] for c in ("engine", "trial", "verdict", "reviewer"))
    latest = {(str(e), int(t)): (str(v), str(r)) for e, t, v, r in zip(*columns, strict=True)}
    found = [latest.get((str(e), int(t))) for e, t in zip(frame["engine"], frame["trial_number"], strict=True)]
    out = frame.copy()
    at = list(out.columns).index("trial_number") + 1
    out.insert(at, "review", [f[0] if f else None for f in found])
    out.insert(at + 1, "reviewer", [f[1] if f else None for f in found])
    return out


def config_table(config: dict[str, Any]) -> pd.DataFrame:
    """A trial's configuration as a two-column table (values as text: one column, many types)."""
    return pd.DataFrame({"parameter": list(config), "value": [_plain(v) for v in config.values()]})


def _plain(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "—" if value is None else str(value)


def all_trials(engine: Engine, study: str) -> pd.DataFrame:
    """Every validation row of a study (for charts), without the JSON blobs."""
    columns = [getattr(TrialRow, c) for c in (*TABLE_COLUMNS, "created_at", "pruned_at_epoch")]
    with Session(engine) as session:
        rows = session.execute(
            select(*columns)
            .where(TrialRow.study_name == study, TrialRow.split == "val")
            .order_by(TrialRow.trial_number)
        ).all()
    return pd.DataFrame(rows, columns=[c.key for c in columns])


def trial_keys(engine: Engine, study: str) -> list[tuple[str, int]]:
    """Every trial of a study with stored results, as (engine, number), in trial order (one narrow query)."""
    with Session(engine) as session:
        rows = session.execute(
            select(TrialRow.engine, TrialRow.trial_number)
            .where(TrialRow.study_name == study, TrialRow.split == "val")
            .order_by(TrialRow.trial_number, TrialRow.engine)
        ).all()
    return [(str(e), int(n)) for e, n in rows]


def pareto_front(frame: pd.DataFrame, x: str = "covid_sensitivity", y: str = "lung_focus") -> pd.Series:
    """True for rows no other row beats on both ``x`` and ``y`` (higher is better); False where unknown.

    One sort and one sweep (n log n; 7,000 trials in milliseconds): by ``x`` from the highest, a
    row is on the front when it has the highest ``y`` of its ``x`` and beats every ``y`` of a
    higher ``x``. Equal rows are all on it (neither beats the other).
    """
    values = frame[[x, y]].to_numpy(dtype=float)
    known = np.flatnonzero(~np.isnan(values).any(axis=1))
    front = np.zeros(len(frame), dtype=bool)
    if len(known):
        xs, ys = values[known, 0], values[known, 1]
        order = np.lexsort((-ys, -xs))  # x descending, then y descending
        xs, ys = xs[order], ys[order]
        starts = np.concatenate([[True], xs[1:] != xs[:-1]])
        group = np.cumsum(starts) - 1
        best = ys[starts]  # the highest y of each x
        before = np.concatenate([[-np.inf], np.maximum.accumulate(best)[:-1]])  # the highest y of higher x
        front[known[order]] = (ys == best[group]) & (ys > before[group])
    return pd.Series(front, index=frame.index)


@dataclass
class TrialDetail:
    trial_number: int
    engine: str
    state: str
    config: dict[str, Any]
    metrics: dict[str, Any]
    class_names: list[str]
    per_class: pd.DataFrame
    confusion: list[list[int]] | None
    roc: tuple[list[float], list[float]] | None
    epochs: pd.DataFrame
    pruned_at_epoch: int | None
    error: str | None
    artifacts: list[dict[str, Any]] = field(default_factory=list)
    folds: pd.DataFrame = field(default_factory=pd.DataFrame)  # per figure: mean, std, per-fold values
    problems: list[str] = field(default_factory=list)  # stored values that could not be read
    # Per figure (rows), a column per row kind: validation, then test and external sets, which never rank.
    by_split: pd.DataFrame = field(default_factory=pd.DataFrame)
    external_notes: list[str] = field(default_factory=list)  # per external set: what it is and what was left out


_EXTERNAL = "external:"
# The figures shown side by side for each row kind, as LABELS names them (AUC: not only validation's).
SPLIT_FIGURES = (
    "op_sensitivity", "op_sensitivity_low", "op_sensitivity_high", "op_specificity", "op_specificity_low",
    "op_specificity_high", "covid_threshold", "covid_auc", "covid_sensitivity", "covid_specificity", "covid_ppv",
    "covid_npv", "accuracy", "balanced_accuracy", "roc_auc", "lung_focus", "lung_focus_ratio", "pointing_game",
    "lung_focus_n", "hidden_lungs_auc", "loss",
)  # fmt: skip
_SPLIT_LABELS = {**LABELS, "roc_auc": "AUC (macro one-vs-rest)", "lung_focus_n": "lung focus: images measured"}


def split_label(split: str) -> str:
    """The column header of a row kind on the trial page."""
    if split == "val":
        return "validation"
    if split == "test":
        return "test (measured once) — never used to rank"
    if split.startswith(_EXTERNAL):
        return f"external: {split.removeprefix(_EXTERNAL)} — never used to rank"
    return f"{split} — never used to rank"


def _images(row: TrialRow, described: dict[str, Any]) -> int | None:
    """How many images a row was measured on: an external row says so; otherwise the per-class supports."""
    if isinstance(described.get("n"), int):
        return int(described["n"])
    try:
        supports = [float(c["support"]) for c in json.loads(row.per_class_json or "{}").values()]
    except (ValueError, TypeError, KeyError, AttributeError):
        return None
    return int(sum(supports)) if supports else None


def _by_split(rows: list[TrialRow], problems: list[str]) -> tuple[pd.DataFrame, list[str]]:
    """The figures of every row kind of one trial side by side, validation first, and a note per external set."""
    from search._external import left_out_text

    order = {"val": 0, "test": 1}
    rows = sorted(rows, key=lambda r: (order.get(r.split, 2), r.split))
    columns: dict[str, list[Any]] = {}
    notes = []
    for row in rows:
        described: dict[str, Any] = {}
        if row.split.startswith(_EXTERNAL):
            described = _json_column(row, "external_json", {}, problems)
            name = row.split.removeprefix(_EXTERNAL)
            what = f"{described.get('path', 'unknown path')}, fingerprint {described.get('fingerprint', 'unknown')}"
            note = f" {described['note']}." if described.get("note") else ""
            try:
                left = left_out_text(described.get("left_out") or {})
            except (TypeError, AttributeError, KeyError):  # a corrupt column: say less, never fail the page
                left = "unknown"
            notes.append(f"external: {name} — {what}; left out: {left}.{note}")
        columns[split_label(row.split)] = [_images(row, described), *(getattr(row, k) for k in SPLIT_FIGURES)]
    index = ["images", *(_SPLIT_LABELS.get(k, k) for k in SPLIT_FIGURES)]
    return pd.DataFrame(columns, index=index), notes


def trial_detail(engine: Engine, study: str, trial_number: int, engine_name: str = "optuna") -> TrialDetail | None:
    with Session(engine) as session:
        row = session.scalar(
            select(TrialRow).where(
                TrialRow.study_name == study,
                TrialRow.trial_number == trial_number,
                TrialRow.engine == engine_name,
                TrialRow.split == "val",
            )
        )
        if row is None:
            return None
        epochs = session.execute(
            select(
                EpochRow.epoch,
                EpochRow.phase,
                EpochRow.loss,
                EpochRow.val_loss,
                EpochRow.val_accuracy,
                EpochRow.learning_rate,
            )
            .where(EpochRow.trial_id == row.id)
            .order_by(EpochRow.epoch)
        ).all()
        artifacts = session.execute(
            select(ArtifactRow.kind, ArtifactRow.artifact_id, ArtifactRow.filename, ArtifactRow.bytes).where(
                ArtifactRow.trial_id == row.id
            )
        ).all()
        problems: list[str] = []
        others = session.scalars(
            select(TrialRow).where(
                TrialRow.study_name == study,
                TrialRow.trial_number == trial_number,
                TrialRow.engine == engine_name,
                TrialRow.split != "val",
            )
        ).all()
        by_split, external_notes = _by_split([row, *others], problems)
        per_class = _json_column(row, "per_class_json", {}, problems)
        roc = _json_column(row, "covid_roc_json", None, problems)
        confusion = _json_column(row, "confusion_json", None, problems)
        return TrialDetail(
            trial_number=row.trial_number,
            engine=row.engine,
            state=row.state,
            config=_json_column(row, "config_json", {}, problems),
            metrics={k: getattr(row, k) for k in LABELS},
            class_names=_json_column(row, "class_names_json", [], problems),
            per_class=_per_class_table(per_class, problems),
            confusion=confusion if isinstance(confusion, list) else None,
            roc=_roc(roc, problems),
            epochs=pd.DataFrame(
                epochs, columns=["epoch", "phase", "loss", "val_loss", "val_accuracy", "learning_rate"]
            ),
            pruned_at_epoch=row.pruned_at_epoch,
            error=row.error,
            artifacts=[dict(a._mapping) for a in artifacts],
            folds=_fold_table(row.fold_spread_json),
            problems=problems,
            by_split=by_split,
            external_notes=external_notes,
        )


def _json_column(row: TrialRow, column: str, default: Any, problems: list[str]) -> Any:
    """A JSON column's value; a corrupt one is reported (``problems``) and shown as missing."""
    text = getattr(row, column)
    if not text:
        return default
    try:
        value = json.loads(text)
    except ValueError as exc:
        problems.append(f"The column {column} of this trial must hold JSON, but it does not ({exc}).")
        return default
    if default is not None and not isinstance(value, type(default)):
        problems.append(
            f"The column {column} of this trial must hold a JSON {type(default).__name__}, "
            f"but holds a {type(value).__name__}."
        )
        return default
    return value


def _per_class_table(per_class: dict[str, Any], problems: list[str]) -> pd.DataFrame:
    try:
        return pd.DataFrame(per_class).T if per_class else pd.DataFrame()
    except (ValueError, TypeError) as exc:
        problems.append(f"The per-class figures of this trial must be a table, but are not ({exc}).")
        return pd.DataFrame()


def _roc(roc: Any, problems: list[str]) -> tuple[list[float], list[float]] | None:
    if roc is None:
        return None
    if isinstance(roc, list) and len(roc) == 2 and all(isinstance(c, list) for c in roc):
        return roc[0], roc[1]
    problems.append("The ROC curve of this trial must be two lists of rates, but is not.")
    return None


def _fold_table(spread_json: str | None) -> pd.DataFrame:
    """A cross-validated trial's figures: mean and standard deviation over folds, then each fold."""
    if not spread_json:
        return pd.DataFrame()
    try:
        spread = json.loads(spread_json)
        rows = {
            LABELS.get(name, name): {
                "mean": item.get("mean"),
                "std": item.get("std"),
                **{f"fold {k + 1}": v for k, v in enumerate(item.get("folds", []))},
            }
            for name, item in spread.items()
        }
    except (ValueError, AttributeError, TypeError):  # a corrupt column: no fold table rather than no page
        return pd.DataFrame()
    return pd.DataFrame(rows).T


def _study_attr(engine: Engine, study: str, key: str) -> Any:
    """One of the study's Optuna user attributes, read in SQL (no Optuna storage needed)."""
    from sqlalchemy import text

    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT a.value_json FROM study_user_attributes a JOIN studies s ON s.study_id = a.study_id "
                "WHERE s.study_name = :name AND a.key = :key"
            ),
            {"name": study, "key": key},
        ).first()
    return None if row is None else json.loads(row[0])


def study_artifacts(engine: Engine, study: str) -> str | None:
    """Where the study keeps its artifacts (a folder or s3://bucket, from its Optuna user attributes);
    read them with :func:`search.artifacts.read_artifact`, which never trusts this value."""
    location = _study_attr(engine, study, "cxr_artifacts")
    return location if isinstance(location, str) and location else None


def study_version(engine: Engine, study: str) -> str:
    """Changes whenever a trial of the study is recorded (or recorded again); not when an export
    adds its test-split row."""
    with Session(engine) as session:
        count, last = session.execute(
            select(func.count(), func.max(TrialRow.created_at)).where(
                TrialRow.study_name == study, TrialRow.split == "val"
            )
        ).one()
    return f"{count}-{last}"


def study_ranking(engine: Engine, study: str) -> Ranking:
    """The study's own default ranking (its operating target decides the first figure; its
    constraints, if any, put the trials that meet them first)."""
    from search.space import SearchSpace

    space = _study_attr(engine, study, "cxr_space")
    if space is None:
        return DEFAULT_RANKING
    training = SearchSpace.from_dict(json.loads(space)).training
    return Ranking.for_figure(
        training.target.ranked_figure,
        min_lung_focus_ratio=training.min_lung_focus_ratio,
        max_hidden_lungs_auc=training.max_hidden_lungs_auc,
    )

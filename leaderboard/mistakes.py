"""What a trial gets wrong, for the leaderboard's trial page: no Streamlit, no TensorFlow.

At trial time up to ``search.store.MISTAKES`` (8) misclassified validation images are picked at
the trial's own COVID threshold (missed COVID first, most confident misses first; then false
COVID; then confusions between the other classes), each with its COVID Grad-CAM overlay stored
as a ``"mistake"`` artifact, and listed in the trial row's ``mistakes_json``. Here:

- :func:`mistakes_frame`: those images as a table, in the order they were picked;
- :func:`mistake_overlays`: their overlay PNGs, read with :func:`search.artifacts.read_artifact`
  as the trial page reads its Grad-CAM overlays (bare artifact ids inside the artifact root,
  regular files, size-capped; a bad one is a sentence, not an exception);
- :func:`mistake_summary`: the whole confusion at the same threshold, counted again from the
  stored validation (or out-of-fold) predictions, so the page can say "8 of 23 misclassified
  validation images shown".

Every function takes the database URL (opened read-only for the call) or the page's own
read-only engine.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pandas as pd
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from leaderboard.data import read_only_engine, study_artifacts
from search import SearchError
from search.artifacts import read_artifact
from search.store import MISTAKES, ResultStore, TrialRow, count_mistakes, parse_mistakes

__all__ = ["MISTAKES", "MISTAKE_COLUMNS", "MistakeSummary", "mistake_overlays", "mistake_summary", "mistakes_frame"]

# mistakes_frame's columns; ``probabilities`` holds a dict {class name: probability} per row.
MISTAKE_COLUMNS = (
    "kind", "entry", "path", "label", "predicted", "covid_probability", "probabilities", "artifact_id",
)  # fmt: skip
_KIND_WORDS = {"missed_covid": "missed COVID", "false_covid": "false COVID", "other": "other confusion"}


@contextmanager
def _engine(source: str | Engine) -> Iterator[Engine]:
    if isinstance(source, Engine):
        yield source
        return
    engine = read_only_engine(source)
    try:
        yield engine
    finally:
        engine.dispose()


def _row(engine: Engine, study: str, trial: int, engine_name: str) -> TrialRow | None:
    with Session(engine, expire_on_commit=False) as session:
        return session.scalar(
            select(TrialRow).where(
                TrialRow.study_name == study,
                TrialRow.engine == engine_name,
                TrialRow.trial_number == trial,
                TrialRow.split == "val",
            )
        )


def mistakes_frame(url: str | Engine, study: str, trial: int, engine: str = "optuna") -> pd.DataFrame:
    """The trial's stored misclassified images (columns :data:`MISTAKE_COLUMNS`, plus ``what``:
    the kind in words), in the order they were picked; empty for a trial without them (pruned,
    failed, or recorded before version 6). Malformed stored items are left out and said, one
    sentence each, in ``frame.attrs["problems"]``."""
    with _engine(url) as db:
        row = _row(db, study, trial, engine)
    items, problems = parse_mistakes(None if row is None else row.mistakes_json)
    frame = pd.DataFrame([[item[c] for c in MISTAKE_COLUMNS] for item in items], columns=list(MISTAKE_COLUMNS))
    frame["what"] = [_KIND_WORDS[k] for k in frame["kind"]]
    frame.attrs["problems"] = problems
    return frame


def mistake_overlays(url: str | Engine, study: str, frame: pd.DataFrame) -> tuple[list[bytes | None], list[str]]:
    """Per row of :func:`mistakes_frame`, its overlay's PNG bytes (None when it cannot be read), and
    one sentence per problem. The artifact ids come from the database and are never trusted: a
    traversal, a link out of the artifact root, a special or oversize file is refused."""
    with _engine(url) as db:
        location = study_artifacts(db, study)
    if location is None:
        return [None] * len(frame), ["The study names no artifact location, so its overlays cannot be shown."]
    images: list[bytes | None] = []
    problems: list[str] = []
    for artifact_id in frame["artifact_id"] if len(frame) else []:
        try:
            images.append(read_artifact(location, str(artifact_id)))
        except (SearchError, OSError) as exc:
            images.append(None)
            problems.append(str(exc))
    return images, problems


@dataclass(frozen=True)
class MistakeSummary:
    """A trial's confusion at its own threshold, counted from its stored predictions."""

    shown: int  # images with a stored overlay (at most MISTAKES)
    misclassified: int
    n: int  # images the predictions cover
    missed_covid: int
    false_covid: int
    other: int
    threshold: float | None  # the trial's COVID threshold (None: argmax)
    images: str  # "validation" or "out-of-fold" (a cross-validated trial's)
    confusion: pd.DataFrame  # rows: true class, columns: predicted class

    @property
    def text(self) -> str:
        """E.g. ``8 of 23 misclassified validation images shown``."""
        if self.misclassified == 0:
            return f"No {self.images} image is misclassified at this trial's threshold ({self.n} images)."
        return f"{self.shown} of {self.misclassified} misclassified {self.images} images shown"


def mistake_summary(url: str | Engine, study: str, trial: int, engine: str = "optuna") -> MistakeSummary | None:
    """The trial's whole confusion at its threshold (the rule the trial picked its mistakes by), or
    None when the trial has no stored predictions or class names (pruned, failed, older)."""
    with _engine(url) as db:
        row = _row(db, study, trial, engine)
        if row is None:
            return None
        stored = ResultStore(str(db.url), engine=db).predictions(study, [row]).get(trial)
    names = _class_names(row)
    if stored is None or names is None or len(names) != stored.proba.shape[1]:
        return None
    counts = count_mistakes(stored.labels, stored.proba, row.covid_threshold)
    shown = len(parse_mistakes(row.mistakes_json)[0])
    return MistakeSummary(
        shown=shown,
        misclassified=counts.misclassified,
        n=counts.n,
        missed_covid=counts.missed_covid,
        false_covid=counts.false_covid,
        other=counts.other,
        threshold=row.covid_threshold,
        images="out-of-fold" if stored.kind == "oof" else "validation",
        confusion=pd.DataFrame(counts.confusion, index=names, columns=names),
    )


def _class_names(row: TrialRow) -> list[str] | None:
    try:
        names: Any = json.loads(row.class_names_json or "null")
    except ValueError:
        return None
    return names if isinstance(names, list) and all(isinstance(n, str) for n in names) else None

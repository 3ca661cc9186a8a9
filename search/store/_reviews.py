"""Reviewers' verdicts on trials: does the model look at the lungs, or read a shortcut?

A reviewer opens a trial's Grad-CAM overlays and misclassified images and records a verdict:
``lungs`` (its evidence lies in the lungs), ``shortcut`` (it reads markers, text, devices or
anything else outside the lungs) or ``unsure``, with a free-text note. Verdicts are
append-only: a newer verdict on a trial supersedes the older ones, which stay as its history.
A trial whose latest verdict is ``shortcut`` is left out of what export and evaluate choose by
themselves (see :mod:`search._records`).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime

from search._errors import SearchError
from search.store._schema import ReviewRow

__all__ = [
    "NOTE_MAX_CHARS",
    "REVIEWER_MAX_CHARS",
    "VERDICTS",
    "Review",
    "check_note",
    "check_reviewer",
    "check_verdict",
    "describe_shortcut",
    "trial_label",
]

VERDICTS = ("lungs", "shortcut", "unsure")
REVIEWER_MAX_CHARS = 64
NOTE_MAX_CHARS = 2000


@dataclass(frozen=True)
class Review:
    """One recorded verdict (a plain value: safe to keep after its database session ended).

    ``created_at`` is timezone-aware UTC; ``id`` orders reviews as they were recorded.
    """

    id: int
    study_name: str
    engine: str
    trial_number: int
    reviewer: str
    verdict: str
    note: str
    created_at: datetime

    @classmethod
    def from_row(cls, row: ReviewRow) -> Review:
        at = row.created_at
        # SQLite returns the stored UTC time without its zone; PostgreSQL returns it with one.
        at = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
        return cls(
            id=row.id,
            study_name=row.study_name,
            engine=row.engine,
            trial_number=row.trial_number,
            reviewer=row.reviewer,
            verdict=row.verdict,
            note=row.note or "",
            created_at=at,
        )


def _unprintable(char: str) -> bool:
    """Control, format (bidirectional overrides among them), surrogate and unassigned characters;
    any kind of space is fine."""
    return not char.isprintable() and unicodedata.category(char) != "Zs"


def check_reviewer(reviewer: object) -> str:
    """The reviewer's name without surrounding spaces, or a one-sentence :class:`SearchError`."""
    if not isinstance(reviewer, str):
        raise SearchError(f"`reviewer` must be a name (text), but got {reviewer!r}.")
    name = reviewer.strip()
    if not name:
        raise SearchError(f"`reviewer` must be a non-empty name, but got {reviewer!r}.")
    if len(name) > REVIEWER_MAX_CHARS:
        raise SearchError(f"`reviewer` must be at most {REVIEWER_MAX_CHARS} characters, but got {len(name)}.")
    bad = next((c for c in name if _unprintable(c)), None)
    if bad is not None:
        raise SearchError(
            f"`reviewer` must be printable (no control characters or line breaks), but got {name!r} "
            f"(character U+{ord(bad):04X})."
        )
    return name


def check_verdict(verdict: object) -> str:
    if verdict not in VERDICTS:
        raise SearchError(f"`verdict` must be one of {', '.join(VERDICTS)}, but got {verdict!r}.")
    assert isinstance(verdict, str)
    return verdict


def check_note(note: object) -> str:
    """The note with its line breaks as ``\\n``, or a one-sentence :class:`SearchError`.

    Line breaks and tabs are allowed; other control and format characters are not (a note is
    printed on terminals by export and evaluate, and shown on the leaderboard).
    """
    if not isinstance(note, str):
        raise SearchError(f"`note` must be text, but got {note!r}.")
    text = note.replace("\r\n", "\n").replace("\r", "\n")
    if len(text) > NOTE_MAX_CHARS:
        raise SearchError(f"`note` must be at most {NOTE_MAX_CHARS} characters, but got {len(text)}.")
    for position, char in enumerate(text):
        if char not in "\n\t" and _unprintable(char):
            raise SearchError(
                f"`note` must be printable text (line breaks and tabs allowed), but got the character "
                f"U+{ord(char):04X} at position {position}."
            )
    return text


def trial_label(engine: str, trial_number: int) -> str:
    """``trial 3``, or ``trial keras-tuner:3`` for another engine's trial (as the leaderboard's address names it)."""
    return f"trial {trial_number}" if engine == "optuna" else f"trial {engine}:{trial_number}"


def describe_shortcut(review: Review) -> str:
    """``REVIEWER marked it as reading a shortcut (DATE): NOTE`` on one line (the note's lines folded)."""
    note = " ".join(review.note.split())
    when = review.created_at.strftime("%Y-%m-%d %H:%M UTC")
    return f"{review.reviewer} marked it as reading a shortcut ({when})" + (f": {note}" if note else "")

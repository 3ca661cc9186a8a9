"""``ResultStore``: write one trial's results in one transaction; read them back ranked."""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from sqlalchemy import Engine, create_engine, delete, event, func, inspect, select
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.orm import Session, selectinload

from search._errors import SearchError
from search.space import TrialConfig
from search.store._lock import lock_row
from search.store._predictions import Predictions
from search.store._ranking import DEFAULT_RANKING, Ranking
from search.store._reviews import Review, check_note, check_reviewer, check_verdict
from search.store._schema import (
    SCHEMA_VERSION,
    ArtifactRow,
    Base,
    EpochRow,
    PredictionRow,
    ReviewRow,
    SchemaRow,
    TrialRow,
)
from search.store._url import mask_url, parse_url

__all__ = [
    "HIDDEN_LUNGS_AUC_LIMIT",
    "ArtifactRecord",
    "ResultStore",
    "config_row",
    "decides_without_lungs",
    "focus_like_flat_map",
]

# A COVID AUC this high with the lungs hidden is no longer chance (0.5) on a validation split of
# a few hundred X-rays (the AUC's standard error there is about 0.03): the model can tell COVID
# from what lies outside the lungs.
HIDDEN_LUNGS_AUC_LIMIT = 0.6


def focus_like_flat_map(focus_ratio: float | None) -> bool:
    """Whether Grad-CAM evidence is no more in the lungs than a uniform map's would be.

    ``focus_ratio`` is lung focus divided by the lungs' share of the image: 1 is what a map
    that ignores anatomy scores, so a model at or below it may rely on what lies outside the
    lungs (markers, text, devices). Unknown: no (it is reported as unmeasured instead).
    """
    return focus_ratio is not None and focus_ratio < 1.0


def decides_without_lungs(hidden_lungs_auc: float | None) -> bool:
    """Whether a model still tells COVID from the other classes with the lungs hidden
    (``hidden_lungs_auc``, see ``search._hidden``): an AUC at or above :data:`HIDDEN_LUNGS_AUC_LIMIT`,
    or as far below chance (the same separation, inverted).

    Grad-CAM can put a model's evidence inside the lungs while its decision reads the rest of the
    image; this asks the decision. Unknown: no (it is reported as unmeasured instead).
    """
    if hidden_lungs_auc is None:
        return False
    return max(hidden_lungs_auc, 1.0 - hidden_lungs_auc) >= HIDDEN_LUNGS_AUC_LIMIT


@dataclass(frozen=True)
class ArtifactRecord:
    kind: str
    artifact_id: str
    filename: str
    bytes: int


def _engine(url: str) -> Engine:
    parsed = parse_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(url, connect_args={"timeout": 60})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):  # type: ignore[no-untyped-def]
            dbapi_connection.execute("PRAGMA foreign_keys=ON")

        return engine
    # pre-ping: a connection dropped by a restarted server is replaced, not used.
    return create_engine(url, pool_pre_ping=True, pool_recycle=1800)


class ResultStore:
    """The project's result tables in the database at ``url`` (Optuna's tables live beside them).

    ``engine``: one made elsewhere for ``url`` (the leaderboard's read-only one, say); by default
    a writable engine of the store's own.
    """

    def __init__(self, url: str, *, engine: Engine | None = None) -> None:
        self.url = url
        self.engine = engine if engine is not None else _engine(url)

    def create_schema(self) -> None:
        """Create the tables once (before workers start) and stamp the schema version."""
        try:
            Base.metadata.create_all(self.engine)
            with Session(self.engine) as session, session.begin():
                if session.get(SchemaRow, "version") is None:
                    session.add(SchemaRow(key="version", value=str(SCHEMA_VERSION)))
        except OperationalError as exc:
            raise SearchError(
                f"The database must be reachable, but {mask_url(self.url)} is not ({exc.orig})."
            ) from None
        self.check_schema()

    def check_schema(self) -> None:
        try:
            if not inspect(self.engine).has_table(SchemaRow.__tablename__):
                raise SearchError(f"The database {mask_url(self.url)} has no cxr-search results tables yet.")
            with Session(self.engine) as session:
                row = session.get(SchemaRow, "version")
        except OperationalError as exc:
            raise SearchError(
                f"The database must be reachable, but {mask_url(self.url)} is not ({exc.orig})."
            ) from None
        if row is None or int(row.value) != SCHEMA_VERSION:
            found = None if row is None else row.value
            how = (
                "; upgrade it in place with: python -m search.store upgrade --storage URL (or URL in $CXR_STORAGE)"
                if row is not None and int(row.value) < SCHEMA_VERSION
                else ""
            )
            raise SearchError(
                f"The results schema must be version {SCHEMA_VERSION}, but {mask_url(self.url)} has version {found}"
                f"{how}."
            )

    def record(
        self,
        row: TrialRow,
        epochs: Sequence[EpochRow] = (),
        artifacts: Sequence[ArtifactRecord] = (),
        predictions: Sequence[Predictions] = (),
        *,
        attempts: int = 6,
    ) -> int:
        """Write a trial with its epochs and artifacts in one transaction; return the row id.

        Writing the same (study, engine, trial, split) again replaces the earlier row, so a
        transaction retried after a dropped connection (a restarted server) never duplicates
        a trial. Waits up to about a minute in all before giving up.
        """
        for attempt in range(attempts):
            try:
                return self._record_once(row, list(epochs), list(artifacts), list(predictions))
            except IntegrityError:
                # Another writer inserted the same row between our delete and insert (a database
                # without row locks): replacing it again is what the caller asked for.
                if attempt == attempts - 1:
                    raise
                time.sleep(random.uniform(0.0, 0.2))
            except (OperationalError, InterfaceError):
                if attempt == attempts - 1:
                    raise
                time.sleep(min(2**attempt, 20))
        raise AssertionError("unreachable")

    def _record_once(
        self,
        source: TrialRow,
        epochs: list[EpochRow],
        artifacts: list[ArtifactRecord],
        predictions: list[Predictions],
    ) -> int:
        # A fresh copy per attempt: a failed flush leaves the ORM objects bound to a dead session.
        columns = [c.key for c in TrialRow.__table__.columns if c.key != "id"]
        row = TrialRow(**{c: getattr(source, c) for c in columns if getattr(source, c) is not None})
        epoch_columns = [c.key for c in EpochRow.__table__.columns if c.key not in ("id", "trial_id")]
        epochs = [EpochRow(**{c: getattr(e, c) for c in epoch_columns}) for e in epochs]
        with Session(self.engine, expire_on_commit=False) as session, session.begin():
            # Several workers may record the same lost trial at once: one at a time, last one wins.
            lock_row(session.connection(), row.study_name, row.engine, row.trial_number, row.split)
            session.execute(
                delete(TrialRow).where(
                    TrialRow.study_name == row.study_name,
                    TrialRow.engine == row.engine,
                    TrialRow.trial_number == row.trial_number,
                    TrialRow.split == row.split,
                )
            )
            row.epochs = epochs
            row.artifacts = [ArtifactRow(**a.__dict__) for a in artifacts]
            row.predictions = [p.to_row() for p in predictions]
            session.add(row)
            session.flush()
            source.id = row.id
            return row.id

    def trials(self, study_name: str, *, split: str = "val", engine: str | None = None) -> list[TrialRow]:
        """All rows of a study, with epochs and artifacts loaded."""
        query = (
            select(TrialRow)
            .where(TrialRow.study_name == study_name, TrialRow.split == split)
            .options(selectinload(TrialRow.epochs), selectinload(TrialRow.artifacts))
            .order_by(TrialRow.trial_number)
        )
        if engine is not None:
            query = query.where(TrialRow.engine == engine)
        with Session(self.engine, expire_on_commit=False) as session:
            return list(session.scalars(query))

    def ranked(self, study_name: str, limit: int | None = None, ranking: Ranking = DEFAULT_RANKING) -> list[TrialRow]:
        """Completed validation rows, best first under ``ranking``."""
        query = (
            select(TrialRow)
            .where(TrialRow.study_name == study_name, TrialRow.split == "val", TrialRow.state == "COMPLETE")
            .order_by(*ranking.order_by())
            .options(selectinload(TrialRow.artifacts))
            .limit(limit)
        )
        with Session(self.engine, expire_on_commit=False) as session:
            return list(session.scalars(query))

    def predictions(self, study_name: str, rows: Sequence[TrialRow]) -> dict[int, Predictions]:
        """The stored probabilities of these rows (validation or out-of-fold), by trial number."""
        ids = {r.id: r.trial_number for r in rows}
        query = select(PredictionRow).where(PredictionRow.trial_id.in_(list(ids)))
        with Session(self.engine) as session:
            return {ids[p.trial_id]: Predictions.from_row(p) for p in session.scalars(query)}

    def add_review(
        self,
        study: str,
        trial_number: int,
        *,
        reviewer: str,
        verdict: str,
        note: str = "",
        engine: str = "optuna",
    ) -> Review:
        """Record a reviewer's verdict on one trial and return it (append-only: it supersedes the
        trial's earlier verdicts, which stay as its history).

        ``verdict`` is one of :data:`search.store.VERDICTS`; ``reviewer`` a printable name of at
        most 64 characters (surrounding spaces dropped); ``note`` free text of at most 2,000
        characters (line breaks and tabs allowed, other control characters not). The trial must
        have a validation row in this store for ``study`` and ``engine``. A bad value, or a
        database that refuses the write (a read-only connection), is a one-sentence
        :class:`SearchError`; ``created_at`` is the time of recording in UTC.
        """
        name, verdict, text = check_reviewer(reviewer), check_verdict(verdict), check_note(note)
        if not isinstance(trial_number, int) or isinstance(trial_number, bool):
            raise SearchError(f"`trial_number` must be a whole number, but got {trial_number!r}.")
        try:
            with Session(self.engine, expire_on_commit=False) as session, session.begin():
                found = session.scalar(
                    select(TrialRow.id)
                    .where(
                        TrialRow.study_name == study,
                        TrialRow.engine == engine,
                        TrialRow.trial_number == trial_number,
                        TrialRow.split == "val",
                    )
                    .limit(1)
                )
                if found is None:
                    raise SearchError(
                        f"`trial_number` must be a trial of study {study!r} (engine {engine}) with stored results, "
                        f"but got {trial_number}."
                    )
                row = ReviewRow(study_name=study, engine=engine, trial_number=trial_number)
                row.reviewer, row.verdict, row.note = name, verdict, text
                session.add(row)
                session.flush()
                return Review.from_row(row)
        except DBAPIError as exc:
            reason = str(exc.orig).strip().splitlines()[0] if str(exc.orig).strip() else type(exc.orig).__name__
            raise SearchError(
                f"The results database must accept the review, but {mask_url(self.url)} refused it ({reason})."
            ) from None

    def reviews(self, study: str, trial_number: int | None = None, *, engine: str | None = None) -> list[Review]:
        """The study's verdicts (of one trial, and of one engine, when given), oldest first."""
        query = select(ReviewRow).where(ReviewRow.study_name == study).order_by(ReviewRow.id)
        if trial_number is not None:
            query = query.where(ReviewRow.trial_number == trial_number)
        if engine is not None:
            query = query.where(ReviewRow.engine == engine)
        with Session(self.engine) as session:
            return [Review.from_row(r) for r in session.scalars(query)]

    def latest_verdicts(self, study: str) -> dict[tuple[str, int], Review]:
        """Each reviewed trial's latest verdict, keyed by ``(engine, trial_number)``."""
        latest = (
            select(func.max(ReviewRow.id))
            .where(ReviewRow.study_name == study)
            .group_by(ReviewRow.engine, ReviewRow.trial_number)
        )
        query = select(ReviewRow).where(ReviewRow.id.in_(latest)).order_by(ReviewRow.id)
        with Session(self.engine) as session:
            return {(r.engine, r.trial_number): Review.from_row(r) for r in session.scalars(query)}

    def dispose(self) -> None:
        self.engine.dispose()


def config_row(study_name: str, number: int, config: TrialConfig, state: str, engine: str = "optuna") -> TrialRow:
    """A validation row carrying the trial's config: every config field that is also a column."""
    columns = set(TrialRow.__table__.columns.keys())
    fields = {k: v for k, v in asdict(config).items() if k in columns}
    return TrialRow(
        study_name=study_name,
        engine=engine,
        trial_number=number,
        state=state,
        split="val",
        config_json=config.to_json(),
        **fields,
    )

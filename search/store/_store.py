"""``ResultStore``: write one trial's results in one transaction; read them back ranked."""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from sqlalchemy import Engine, create_engine, delete, event, inspect, select
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError
from sqlalchemy.orm import Session, selectinload

from search._errors import SearchError
from search.space import TrialConfig
from search.store._lock import lock_row
from search.store._predictions import Predictions
from search.store._ranking import DEFAULT_RANKING, Ranking
from search.store._schema import SCHEMA_VERSION, ArtifactRow, Base, EpochRow, PredictionRow, SchemaRow, TrialRow
from search.store._url import mask_url, parse_url

__all__ = ["ArtifactRecord", "ResultStore", "config_row", "focus_like_flat_map"]


def focus_like_flat_map(focus_ratio: float | None) -> bool:
    """Whether Grad-CAM evidence is no more in the lungs than a uniform map's would be.

    ``focus_ratio`` is lung focus divided by the lungs' share of the image: 1 is what a map
    that ignores anatomy scores, so a model at or below it may rely on what lies outside the
    lungs (markers, text, devices). Unknown: no (it is reported as unmeasured instead).
    """
    return focus_ratio is not None and focus_ratio < 1.0


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
    """The project's result tables in the database at ``url`` (Optuna's tables live beside them)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = _engine(url)

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

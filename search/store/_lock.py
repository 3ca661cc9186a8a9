"""One process at a time where two would race: creating the schema and a study, writing a trial.

PostgreSQL: advisory locks (a session lock around creation, a transaction lock per trial
row). SQLite: a lock file beside the database (SQLite itself already serialises writes).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Connection, NullPool, create_engine, text
from sqlalchemy.exc import OperationalError

from cxrdata import one_at_a_time
from search._errors import SearchError
from search.store._url import mask_url, parse_url

__all__ = ["advisory_key", "creation_lock", "lock_row"]


def advisory_key(*parts: object) -> int:
    """A signed 64-bit key for ``pg_advisory_lock``, the same in every process."""
    digest = hashlib.sha256("\0".join(str(p) for p in ("cxr-search", *parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@contextmanager
def creation_lock(url: str) -> Iterator[None]:
    """Held while the schema, Optuna's tables or a study are created, so two launches of a new
    study at once take turns: the second finds the first's study, complete."""
    parsed = parse_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        with _file_lock(parsed.database):
            yield
    elif backend == "postgresql":
        with _advisory_lock(url):
            yield
    else:  # other databases: no lock (only SQLite and PostgreSQL are supported and tested)
        yield


@contextmanager
def _file_lock(database: str | None) -> Iterator[None]:
    if not database or database == ":memory:" or database.startswith("file:"):
        yield
        return
    path = Path(database).resolve()
    if not path.parent.is_dir():  # the database itself will fail to open, with its own sentence
        yield
        return
    with one_at_a_time(path):  # the lock file beside the database, as every cache takes it
        yield


@contextmanager
def _advisory_lock(url: str) -> Iterator[None]:
    engine = create_engine(url, poolclass=NullPool)
    key = advisory_key("creation")
    try:
        conn = engine.connect()
    except OperationalError as exc:
        raise SearchError(f"The database must be reachable, but {mask_url(url)} is not ({exc.orig}).") from None
    try:
        conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": key})
        conn.commit()
        yield
    finally:
        try:
            conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
            conn.commit()
        finally:
            conn.close()
            engine.dispose()


def lock_row(connection: Connection, *parts: object) -> None:
    """Within the current transaction, wait for any other writer of the same row (PostgreSQL)."""
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": advisory_key("row", *parts)})

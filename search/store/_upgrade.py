"""Upgrading an older results database in place, with Alembic's operations.

Every change since version 3 adds nullable columns, tables or indexes, or widens a column
(version 5: ``split``, for ``external:NAME`` rows; version 6: the ``cxr_reviews`` table and
``cxr_trials.mistakes_json``; version 7: ``cxr_trials.input_region``, filled from each row's
``config_json``; version 8: ``cxr_trials.hidden_lungs_auc``, empty in older rows), so an upgrade
adds what is missing, widens what is too narrow and keeps every row; the version is stamped
last, in the same transaction.
"""

from __future__ import annotations

import json

from alembic.migration import MigrationContext
from alembic.operations import Operations
from sqlalchemy import Column, Connection, Engine, String, Table, inspect, select, update

from search.store._schema import SCHEMA_VERSION, Base, SchemaRow, TrialRow

__all__ = ["OLDEST_UPGRADABLE", "upgrade_schema"]

OLDEST_UPGRADABLE = 3


def upgrade_schema(engine: Engine) -> tuple[int, int]:
    """Bring the results tables to :data:`SCHEMA_VERSION`; return (version before, version after)."""
    with engine.begin() as conn:
        has_schema = inspect(conn).has_table(SchemaRow.__tablename__)
        found = conn.execute(select(SchemaRow.value).where(SchemaRow.key == "version")).scalar() if has_schema else None
        if found is None:
            raise ValueError("The database must hold cxr-search results tables to upgrade, but it has none.")
        before = int(found)
        if before == SCHEMA_VERSION:
            return before, before
        if not OLDEST_UPGRADABLE <= before < SCHEMA_VERSION:
            raise ValueError(
                f"The results schema must be a version from {OLDEST_UPGRADABLE} to {SCHEMA_VERSION} to upgrade, "
                f"but it is {before}."
            )
        Base.metadata.create_all(conn)  # new tables only; existing ones are left as they are
        ops = Operations(MigrationContext.configure(conn))
        table: Table = TrialRow.__table__  # type: ignore[assignment]
        have = {c["name"] for c in inspect(conn).get_columns(table.name)}
        for column in table.columns:
            if column.name not in have:
                assert column.nullable, f"a column added by an upgrade must be nullable: {column.name}"
                ops.add_column(table.name, Column(column.name, column.type, nullable=True))
        _widen(conn, ops, table)
        _fill_regions(conn)
        indexes = {i["name"] for i in inspect(conn).get_indexes(table.name)}
        for index in table.indexes:
            if index.name not in indexes:
                index.create(conn)
        conn.execute(update(SchemaRow).where(SchemaRow.key == "version").values(value=str(SCHEMA_VERSION)))
    return before, SCHEMA_VERSION


def _fill_regions(conn: Connection) -> None:
    """``input_region`` of rows written before it was a column, read from their config (a config
    written before regions existed saw the whole image)."""
    empty = select(TrialRow.id, TrialRow.config_json).where(TrialRow.input_region.is_(None))
    by_region: dict[str, list[int]] = {}
    for row_id, config in conn.execute(empty):
        try:
            region = str(json.loads(config).get("input_region", "full"))
        except (TypeError, ValueError, AttributeError):
            continue  # an unreadable config: the column stays empty rather than guessed
        by_region.setdefault(region, []).append(row_id)
    for region, ids in by_region.items():
        for start in range(0, len(ids), 500):  # bounded IN lists
            chunk = ids[start : start + 500]
            conn.execute(update(TrialRow).where(TrialRow.id.in_(chunk)).values(input_region=region))


def _widen(conn: Connection, ops: Operations, table: Table) -> None:
    """Text columns the schema made wider since, widened in place (SQLite enforces no length: nothing to do)."""
    if conn.dialect.name == "sqlite":
        return
    found = {c["name"]: c["type"] for c in inspect(conn).get_columns(table.name)}
    for column in table.columns:
        have, want = found.get(column.name), column.type
        if not (isinstance(want, String) and isinstance(have, String)) or want.length is None:
            continue
        if have.length is not None and have.length < want.length:
            ops.alter_column(table.name, column.name, type_=String(want.length), existing_type=have)

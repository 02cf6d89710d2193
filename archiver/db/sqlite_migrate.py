"""The SQLite backend's way of applying ``schema.STEPS``: through sqlite-utils.

Imported only when a step is pending: sqlite-utils costs ~70 ms to import (it
compiles a large regex), a quarter of an hourly no-change crawl. Every statement
runs on the caller's connection, inside its transaction (sqlite-utils nests its
own as savepoints), so a step applies whole or not at all.
"""

from __future__ import annotations

import sqlite3
import uuid
from typing import Any

import sqlite_utils
from sqlite_utils.db import ForeignKey

from archiver.db import schema

__all__ = ["apply_step", "utils_for"]

_TYPES = {
    schema.ColumnType.TEXT: "TEXT",
    schema.ColumnType.INTEGER: "INTEGER",
    schema.ColumnType.REAL: "REAL",
}


def utils_for(conn: sqlite3.Connection) -> sqlite_utils.Database:
    """sqlite-utils over ``conn``: no plugins (they could change the connection)."""
    return sqlite_utils.Database(conn, recursive_triggers=False, execute_plugins=False)


def apply_step(u: sqlite_utils.Database, step: schema.Step) -> None:
    """Applies one step: its tables, added columns, indexes and seed rows, in that order."""
    for table in step.tables:
        _create(u, table)
    for add in step.add_columns:
        col = add.column
        assert not (col.not_null or col.unique or col.primary_key or col.references)
        u[add.table].add_column(col.name, _TYPES[col.type])  # type: ignore[union-attr]
    for index in step.indexes:
        u[index.table].create_index(  # type: ignore[union-attr]
            list(index.columns), index_name=index.name, unique=index.unique
        )
    for seed in step.seeds:
        u[seed.table].insert({name: _value(v) for name, v in seed.values})  # type: ignore[union-attr]


def _value(value: str | int | schema.Generated) -> str | int:
    if value is schema.Generated.UUID:
        return uuid.uuid4().hex
    return value


def _create(u: sqlite_utils.Database, table: schema.Table) -> None:
    """``CREATE TABLE`` as sqlite-utils writes it, UNIQUE constraints included.

    ``Table.create`` has no public way to declare a UNIQUE constraint, and a unique
    index instead would not be the schema databases made before this module have
    (their ``sqlite_autoindex_*``): such tables go through ``create_table_sql``'s
    ``_uniques``, the same code ``Table.create`` and ``transform`` use.
    """
    columns = {c.name: _TYPES[c.type] for c in table.columns}
    pk: Any = table.primary_key or next(c.name for c in table.columns if c.primary_key)
    foreign_keys = [
        ForeignKey(
            table.name,
            c.name,
            c.references[0],
            c.references[1],
            on_delete=(c.on_delete or "no action").upper(),
        )
        for c in table.columns
        if c.references is not None
    ]
    not_null = [c.name for c in table.columns if c.not_null]
    defaults = {c.name: c.default for c in table.columns if c.default is not None}
    uniques = [(c.name,) for c in table.columns if c.unique]
    if not uniques and not table.unique:
        u[table.name].create(  # type: ignore[union-attr]
            columns, pk=pk, foreign_keys=foreign_keys, not_null=not_null, defaults=defaults
        )
        return
    from sqlite_utils.create_table_parser import Unique, UniqueColumn

    constraints = [Unique((UniqueColumn(name),), column=name) for (name,) in uniques]
    constraints += [Unique(tuple(UniqueColumn(n) for n in group)) for group in table.unique]
    u.execute(
        u.create_table_sql(
            table.name,
            columns,
            pk=pk,
            foreign_keys=foreign_keys,  # type: ignore[arg-type]
            not_null=not_null,
            defaults=defaults,
            _uniques=constraints,
        )
    )

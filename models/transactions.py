"""Shared plumbing of the stores: optional caller transactions and dialect upserts."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import BindParameter, Column, Connection, Engine, Table, bindparam
from sqlalchemy.dialects import postgresql, sqlite


@contextmanager
def transaction(engine: Engine, conn: Connection | None) -> Iterator[Connection]:
    """Use the caller's connection (and its transaction) if given, else a new transaction.

    This is how callers group several store writes into one atomic unit.
    """
    if conn is not None:
        yield conn
        return
    with engine.begin() as own:
        yield own


def insert_for(conn: Connection | str, table: Table) -> Any:
    """An INSERT that supports ON CONFLICT on the connection's dialect (or the one named)."""
    name = conn if isinstance(conn, str) else conn.dialect.name
    if name == "postgresql":
        return postgresql.insert(table)
    if name == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"drumline supports SQLite and PostgreSQL, not {name!r}")


def bind(name: str, column: Column[Any]) -> BindParameter[Any]:
    """A named parameter typed like `column`, for statements built once and run many times.

    The run path executes the same few statements thousands of times a second; building them
    once saves SQLAlchemy's per-call construction, which costs more than the round trip.
    """
    return bindparam(name, type_=column.type)

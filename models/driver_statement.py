"""A statement compiled once and executed on the driver's own cursor.

The run path sends the same few statements for every run. Through `Connection.execute`, each
execution also pays for SQLAlchemy's machinery around the driver call: the compiled-cache
lookup, building the parameters, an execution context, a result proxy that reads the cursor's
column descriptions (psycopg builds a `Column` object per column for them). For a short run
that machinery cost the worker more CPU than the driver's own execute. Here SQLAlchemy still
writes the SQL and supplies each type's conversions (the same bind and result processors it
would apply), once per statement; an execution then costs the conversions and the driver call.

What stays SQLAlchemy's: the connection (its pool, transaction and autocommit), and a driver
error, raised as SQLAlchemy's DBAPIError with the connection invalidated if it is a disconnect,
as `Connection.execute` would.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.compiler import SQLCompiler

_Processor = Callable[[Any], Any] | None


class DriverStatement:
    """`statement` as `dialect` runs it: its SQL, its parameters in order, their conversions
    and those of the columns it returns."""

    def __init__(self, statement: Any, dialect: Dialect) -> None:
        # A copy: reading a statement's columns memoizes them on it, and a statement derived
        # from it later (`.returning(...)`, `.values(...)`) would inherit that memo.
        statement = statement.execution_options()
        compiled = statement.compile(dialect=dialect)
        assert isinstance(compiled, SQLCompiler)  # a SQL statement, not DDL
        self.sql = compiled.string
        if "POSTCOMPILE" in self.sql:
            # An expanding IN list or a literal rendered per execution: not a fixed text.
            raise ValueError("a driver statement must not need rendering per execution")
        binds = compiled.binds
        # Values fixed in the statement itself (literals, `x + 1`): supplied per execution.
        self._fixed = {name: bp.effective_value for name, bp in binds.items() if not bp.required}
        self._binds: tuple[tuple[str, _Processor], ...] = tuple(
            (name, bp.type.dialect_impl(dialect).bind_processor(dialect))
            for name, bp in binds.items()
        )
        self._order = tuple(compiled.positiontup or ()) if dialect.positional else None
        returned = getattr(statement, "exported_columns", ())
        self.keys = tuple(column.key for column in returned)
        self._types = tuple(column.type.dialect_impl(dialect) for column in returned)
        # Some conversions depend on the driver's type code of a column: read once, from the
        # first execution's description.
        self._results: tuple[_Processor, ...] | None = None
        self._dialect = dialect

    def first(self, conn: Connection, params: Mapping[str, Any]) -> tuple[Any, ...] | None:
        """The first row the statement returns (converted), or None."""
        cursor = self._execute(conn, params)
        try:
            row = cursor.fetchone()
            results = self._results
            if results is None:
                results = self._results = self._result_processors(cursor.description)
        finally:
            cursor.close()
        if row is None:
            return None
        return tuple(
            value if convert is None or value is None else convert(value)
            for value, convert in zip(row, results, strict=True)
        )

    def _result_processors(self, description: Any) -> tuple[_Processor, ...]:
        return tuple(
            kind.result_processor(self._dialect, column[1])
            for kind, column in zip(self._types, description, strict=True)
        )

    def rowcount(self, conn: Connection, params: Mapping[str, Any]) -> int:
        """Execute a statement that returns no rows; how many rows it changed."""
        cursor = self._execute(conn, params)
        try:
            return int(cursor.rowcount)
        finally:
            cursor.close()

    def _execute(self, conn: Connection, params: Mapping[str, Any]) -> Any:
        values = self._fixed | dict(params)
        try:
            converted = {
                name: values[name] if convert is None else convert(values[name])
                for name, convert in self._binds
            }
        except KeyError as missing:
            raise ValueError(f"no value for the parameter {missing}") from None
        driver_params: Any = (
            converted if self._order is None else tuple(converted[name] for name in self._order)
        )
        dbapi_connection = conn.connection.dbapi_connection
        assert dbapi_connection is not None  # a live Connection always has one
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(self.sql, driver_params)
        except self._dialect.loaded_dbapi.Error as exc:
            cursor.close()
            dialect = self._dialect
            disconnected = dialect.is_disconnect(exc, dbapi_connection, cursor)
            if disconnected:
                conn.invalidate(exc)
            raise DBAPIError.instance(
                self.sql,
                driver_params,
                exc,
                dialect.loaded_dbapi.Error,
                connection_invalidated=disconnected,
                dialect=dialect,
            ) from exc
        return cursor

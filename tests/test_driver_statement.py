"""A statement sent on the driver's cursor converts values exactly as SQLAlchemy's execute
does, on both databases, and a driver error is still SQLAlchemy's (a dead connection dropped)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, func, insert, literal, select, update
from sqlalchemy.exc import DBAPIError

from models.db import make_engine
from models.driver_statement import DriverStatement
from models.tables import producer_runs, workflows
from models.transactions import bind
from tests.test_held_connection import POSTGRESQL_ONLY, _terminate

NOW = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
_w = workflows.c
# An INSERT ... RETURNING with a datetime, JSON, and a value fixed in the statement itself.
_ADD = (
    insert(workflows)
    .values(
        name=bind("b_name", _w.name),
        status=literal("active"),
        version=bind("b_version", _w.version) + 1,
        definition=bind("b_definition", _w.definition),
        created_at=bind("b_now", _w.created_at),
        updated_at=bind("b_now", _w.updated_at),
    )
    .returning(_w.id, _w.name, _w.version, _w.definition, _w.created_at)
)
_RENAME = update(workflows).where(_w.name == bind("b_name", _w.name)).values(name="renamed")


def test_values_go_in_and_come_out_as_through_sqlalchemy(engine: Engine) -> None:
    add = DriverStatement(_ADD, engine.dialect)
    definition = {"producers": {"p": {"run": "demo.noop"}}, "note": "é\n"}
    with engine.begin() as conn:
        row = add.first(
            conn, {"b_name": "w", "b_version": 1, "b_definition": definition, "b_now": NOW}
        )
        by_sqlalchemy = conn.execute(select(*_ADD.exported_columns)).one()
    assert row is not None
    assert add.keys == ("id", "name", "version", "definition", "created_at")
    assert row[1:] == ("w", 2, definition, NOW)
    assert row == tuple(by_sqlalchemy)
    assert row[4].tzinfo is not None  # aware, in UTC, on SQLite too


def test_rowcount_and_a_missing_parameter(engine: Engine) -> None:
    rename = DriverStatement(_RENAME, engine.dialect)
    with engine.begin() as conn:
        assert rename.rowcount(conn, {"b_name": "nobody"}) == 0
        with pytest.raises(ValueError, match="b_name"):
            rename.rowcount(conn, {})


def test_a_statement_that_renders_per_execution_is_refused(engine: Engine) -> None:
    expanding = select(producer_runs.c.id).where(producer_runs.c.status.in_(["a", "b"]))
    with pytest.raises(ValueError, match="rendering per execution"):
        DriverStatement(expanding, engine.dialect)


def test_a_driver_error_is_sqlalchemys_and_the_transaction_is_rolled_back(engine: Engine) -> None:
    add = DriverStatement(_ADD, engine.dialect)
    params = {"b_name": "w", "b_version": 1, "b_definition": {}, "b_now": NOW}
    with engine.begin() as conn:
        add.first(conn, params)
    with pytest.raises(DBAPIError, match="INSERT INTO workflows"), engine.begin() as conn:
        add.first(conn, params | {"b_name": "other"})
        add.first(conn, params)  # the name is unique
    with engine.connect() as conn:
        assert conn.execute(select(_w.name)).scalars().all() == ["w"]


@POSTGRESQL_ONLY
def test_a_dead_connection_is_invalidated_not_reused(empty_db_url: str) -> None:
    engine, admin = make_engine(empty_db_url), make_engine(empty_db_url)
    pid = DriverStatement(select(func.pg_backend_pid()), engine.dialect)
    try:
        with engine.connect() as conn:
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            row = pid.first(conn, {})
            assert row is not None
            _terminate(admin, row[0])
            with pytest.raises(DBAPIError) as failed:
                pid.first(conn, {})
            assert failed.value.connection_invalidated
            assert conn.invalidated
    finally:
        engine.dispose()
        admin.dispose()


def test_the_start_and_finish_statements_compile_for_both_databases(engine: Engine) -> None:
    """Every statement the run path sends this way has a fixed text on this dialect."""
    from models import run_path
    from models.slot_ledger_store import record_statement

    statements = [run_path._TAKE_CLAIM, run_path._COMMIT_SLOT, run_path._FINISH_RUN]
    statements += [run_path._begin_statement(engine.dialect.name)]
    statements += [record_statement(engine.dialect.name, n) for n in (1, 3)]
    if engine.dialect.name == "postgresql":
        statements += [run_path._START_PG, run_path._finish_pg(0), run_path._finish_pg(2)]
    for statement in statements:
        assert DriverStatement(statement, engine.dialect).sql

"""The run path's kept connection: reused between runs, yet a connection that died is never
used twice: pinged after PING_AFTER_IDLE_S idle and replaced, and dropped after an error."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from models import held_connection
from models.db import make_engine
from models.held_connection import HeldConnection

POSTGRESQL_ONLY = pytest.mark.parametrize("empty_db_url", ["postgresql"], indirect=True)


def test_the_connection_is_kept_between_uses_and_per_thread(engine: Engine) -> None:
    postgresql = engine.dialect.name == "postgresql"
    held = HeldConnection(engine, autocommit=postgresql)
    try:
        with held() as conn:
            first = conn.connection.dbapi_connection
            conn.execute(text("SELECT 1"))
        with held() as conn:
            assert conn.connection.dbapi_connection is first
            if postgresql:
                assert conn.connection.driver_connection.autocommit is True  # type: ignore[union-attr]
        other: list[object] = []

        def use() -> None:
            with held() as conn:
                other.append(conn.connection.dbapi_connection)
            held.close()

        thread = threading.Thread(target=use)
        thread.start()
        thread.join(10)
        assert other and other[0] is not first
    finally:
        held.close()


@POSTGRESQL_ONLY
def test_a_kept_connection_killed_while_idle_is_pinged_and_replaced(
    empty_db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine, admin = make_engine(empty_db_url), make_engine(empty_db_url)
    held = HeldConnection(engine, autocommit=True)
    try:
        first = _backend_pid(held)
        _terminate(admin, first)
        monkeypatch.setattr(held_connection, "PING_AFTER_IDLE_S", 0.0)  # it has been idle
        assert _backend_pid(held) != first  # without the ping: "server closed the connection"
    finally:
        held.close()
        engine.dispose()
        admin.dispose()


@POSTGRESQL_ONLY
def test_a_kept_connection_that_failed_is_not_used_again(empty_db_url: str) -> None:
    engine, admin = make_engine(empty_db_url), make_engine(empty_db_url)
    held = HeldConnection(engine, autocommit=True)
    try:
        first = _backend_pid(held)
        _terminate(admin, first)  # used again at once: no ping, as for a pooled connection
        with pytest.raises(DBAPIError):
            _backend_pid(held)
        assert _backend_pid(held) not in (first, None)
    finally:
        held.close()
        engine.dispose()
        admin.dispose()


def _backend_pid(held: HeldConnection) -> int:
    with held() as conn:
        return int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())


def _terminate(admin: Engine, pid: int) -> None:
    """Kill the backend `pid` and wait until the server no longer lists it."""
    with admin.connect() as conn:
        assert conn.execute(text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": pid}).scalar()

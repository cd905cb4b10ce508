"""Engines: a pooled PostgreSQL connection killed while idle is replaced, not handed out."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import Engine, text

from models.db import PING_AFTER_IDLE_S, make_engine


@pytest.mark.parametrize("empty_db_url", ["postgresql"], indirect=True)
def test_a_pooled_connection_killed_while_idle_is_replaced(empty_db_url: str) -> None:
    engine, admin = make_engine(empty_db_url), make_engine(empty_db_url)
    try:
        first = backend_pid(engine)
        with admin.connect() as conn:  # the server drops the idle pooled connection
            conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
        time.sleep(PING_AFTER_IDLE_S + 0.1)
        second = backend_pid(engine)  # without the ping: "server closed the connection"
    finally:
        engine.dispose()
        admin.dispose()
    assert second != first


def backend_pid(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())

"""Engines for the embedded (SQLite) and production (PostgreSQL) databases."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError

DEFAULT_DATA_DIR = Path(".drumline")
SQLITE_BUSY_TIMEOUT_MS = 30_000
# A pooled server connection given back longer ago than this is pinged before it is reused.
PING_AFTER_IDLE_S = 1.0


def default_database_url(data_dir: Path = DEFAULT_DATA_DIR) -> str:
    """The embedded default: one SQLite file under the data directory."""
    return f"sqlite:///{(data_dir / 'drumline.db').resolve()}"


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine; SQLite gets WAL, a busy timeout and write-locking transactions."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        engine = create_engine(url, **kwargs)
        _ping_idle_connections(engine)
        return engine
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    kwargs.setdefault("connect_args", {})
    kwargs["connect_args"].setdefault("timeout", SQLITE_BUSY_TIMEOUT_MS / 1000)
    engine = create_engine(url, **kwargs)
    _configure_sqlite(engine)
    return engine


def _configure_sqlite(engine: Engine) -> None:
    """Make every SQLite transaction take the write lock up front.

    pysqlite opens transactions lazily and DEFERRED, so a transaction that reads and then
    writes can fail with "database is locked" without waiting when another writer got in
    between. BEGIN IMMEDIATE makes concurrent writers queue on the busy timeout instead.
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        # Takes effect only on a file with no tables yet, so a new database frees pages that
        # pruning empties with `PRAGMA incremental_vacuum` (models/sqlite_space.py); an
        # existing file gets it from the one VACUUM in `drumline migrate`.
        cursor.execute("PRAGMA auto_vacuum=INCREMENTAL")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def _ping_idle_connections(engine: Engine) -> None:
    """Replace a dead pooled connection before use, pinging only those idle for a while.

    `pool_pre_ping` pings on every checkout: an extra round trip per transaction, a third of
    what a short run costs the database. A connection given back under PING_AFTER_IDLE_S ago
    worked then; an older one (a server restart or a dropped idle connection may have killed
    it) gets the dialect's ping, and if that fails the pool discards it and checks out another.
    """

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info["checked_in_at"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        checked_in_at = record.info.get("checked_in_at")
        if checked_in_at is None or time.monotonic() - checked_in_at < PING_AFTER_IDLE_S:
            return
        ping(engine, dbapi_connection)


def ping(engine: Engine, dbapi_connection: Any) -> None:
    """The dialect's ping; DisconnectionError if the connection is dead."""
    try:
        engine.dialect.do_ping(dbapi_connection)
    except Exception as exc:
        raise DisconnectionError(f"pooled connection failed its ping: {exc}") from exc


def redact_url(url: str) -> str:
    """The URL with any password hidden, for logs and error messages."""
    return make_url(url).render_as_string(hide_password=True)

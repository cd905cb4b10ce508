"""One connection a process keeps for the run path's two statements per run.

A pool checkout and check-in (with the isolation-level switch to autocommit and its reset)
costs the worker more CPU than executing the statement itself: ~160 us of ~270 us per
statement on PostgreSQL. A prefork child runs one task at a time, so it keeps one connection
(per thread, should anything share the path) between runs instead.

The pool's rule for a connection that may have died while idle still holds: one unused for
PING_AFTER_IDLE_S is pinged before use and replaced if the ping fails. After any error the
connection is given back (SQLAlchemy invalidates one that lost its server), never reused as is.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DisconnectionError

from models.db import PING_AFTER_IDLE_S, ping


class HeldConnection:
    """A connection of `engine` kept between uses: in autocommit mode if `autocommit`, else
    each use is one transaction."""

    def __init__(self, engine: Engine, *, autocommit: bool) -> None:
        self.engine = engine
        self.autocommit = autocommit
        self._local = threading.local()

    @contextmanager
    def __call__(self) -> Iterator[Connection]:
        """The connection, in autocommit, or else inside a transaction committed on leaving
        (never left open between uses: on SQLite an open transaction holds the write lock)."""
        conn = self._live()
        try:
            if self.autocommit:
                yield conn
            else:
                with conn.begin():
                    yield conn
        except BaseException:
            self._local.conn = None
            conn.close()
            raise
        self._local.used_at = time.monotonic()

    def close(self) -> None:
        """Give this thread's connection back to the pool."""
        conn: Connection | None = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            conn.close()

    def _live(self) -> Connection:
        local = self._local
        conn: Connection | None = getattr(local, "conn", None)
        if conn is not None and time.monotonic() - local.used_at >= PING_AFTER_IDLE_S:
            try:
                ping(self.engine, conn.connection.dbapi_connection)
            except DisconnectionError:
                conn.invalidate()
                self.close()
                conn = None
        if conn is None:
            conn = self.engine.connect()
            if self.autocommit:
                conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            local.conn = conn
            local.used_at = time.monotonic()
        return conn

"""Giving the pages that deleted rows leave empty back to the file system, on SQLite.

SQLite keeps freed pages in the file for reuse. With `auto_vacuum=INCREMENTAL` (set on every
new database, see models/db.py) `PRAGMA incremental_vacuum(N)` moves up to N of them to the end
of the file and truncates it, in one short write transaction. A file created without it needs
one full VACUUM to switch it on. On PostgreSQL these do nothing: autovacuum reclaims the space.
"""

from __future__ import annotations

from sqlalchemy import Engine

INCREMENTAL = 2  # PRAGMA auto_vacuum's value for INCREMENTAL


def enable_incremental_vacuum(engine: Engine) -> bool:
    """Switch an existing SQLite file to incremental auto-vacuum; True if it had to be done.

    This rewrites the whole file under the write lock (a VACUUM), so it belongs in
    `drumline migrate`, not in a running system; it is done once per file.
    """
    if engine.dialect.name != "sqlite" or _pragma(engine, "auto_vacuum") == INCREMENTAL:
        return False
    raw = engine.raw_connection()
    try:
        # executescript, not execute: it runs outside any transaction, as VACUUM must.
        raw.driver_connection.executescript("PRAGMA auto_vacuum=INCREMENTAL; VACUUM;")  # type: ignore[union-attr]
    finally:
        raw.close()
    return True


def reclaim_free_pages(engine: Engine, max_pages: int) -> int:
    """Truncate up to `max_pages` free pages off the SQLite file; returns how many went."""
    if engine.dialect.name != "sqlite" or _pragma(engine, "auto_vacuum") != INCREMENTAL:
        return 0
    before = _pragma(engine, "freelist_count")
    if before == 0:
        return 0
    raw = engine.raw_connection()
    try:
        # executescript steps the pragma to completion; `execute` frees only its first page.
        raw.driver_connection.executescript(f"PRAGMA incremental_vacuum({int(max_pages)})")  # type: ignore[union-attr]
    finally:
        raw.close()
    return before - _pragma(engine, "freelist_count")


def _pragma(engine: Engine, name: str) -> int:
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute(f"PRAGMA {name}")
        [value] = cursor.fetchall()[0]
        cursor.close()
    finally:
        raw.close()
    return int(value)

"""Real databases for tests: SQLite files, and PostgreSQL (pgserver or an external server)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, text
from sqlalchemy.engine import make_url

from models.db import make_engine
from models.records import JSONDict, ScheduleSpec, WorkflowRecord
from models.workflow_store import WorkflowStore


def start_postgres(data_dir: Path) -> tuple[str, object | None]:
    """The admin URL of a PostgreSQL server, and the pgserver handle keeping it alive."""
    external = os.environ.get("DRUMLINE_TEST_POSTGRES_URL")
    if external:
        return _with_psycopg(external), None
    from pgserver.postgres_server import get_server

    server = get_server(data_dir, cleanup_mode="stop")
    return _with_psycopg(server.get_uri()), server


def _with_psycopg(url: str) -> str:
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


@contextmanager
def fresh_postgres_database(admin_url: str) -> Iterator[str]:
    """Create an empty database for one test and drop it afterwards."""
    name = f"drumline_test_{uuid.uuid4().hex[:12]}"
    admin = make_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


def table_dump(engine: Engine) -> dict[str, list[tuple[object, ...]]]:
    """Every row of every drumline table, for before/after comparisons."""
    from models.tables import metadata

    dump: dict[str, list[tuple[object, ...]]] = {}
    with engine.connect() as conn:
        for table in metadata.sorted_tables:
            rows = conn.execute(table.select().order_by(*table.primary_key.columns)).all()
            dump[table.name] = [tuple(row) for row in rows]
    return dump


def schedule_spec(
    workflow_id: int,
    name: str = "poll",
    *,
    next_run_at: datetime | None,
    run: str = "demo.noop",
    params: dict[str, Any] | None = None,
    timeout_seconds: float | None = None,
    schedule_type: str = "interval",
    schedule_value: str = "30s",
    timezone: str = "UTC",
    paused: bool = False,
    policy: dict[str, Any] | None = None,
) -> ScheduleSpec:
    """A producer's schedule row as a deploy would write it: by default `demo.noop` every 30 s
    in UTC with no params; each test passes what it needs to differ."""
    return ScheduleSpec(
        workflow_id=workflow_id,
        producer_name=name,
        run=run,
        params={} if params is None else params,
        timeout_seconds=timeout_seconds,
        schedule_type=schedule_type,
        schedule_value=schedule_value,
        timezone=timezone,
        next_run_at=next_run_at,
        paused=paused,
        policy={} if policy is None else policy,
    )


def new_workflow(
    engine: Engine,
    name: str,
    definition: JSONDict,
    *,
    now: datetime,
    conn: Connection | None = None,
) -> WorkflowRecord:
    """A new workflow row at version 1, as a first deploy writes it (`WorkflowStore.create`)."""
    workflow = WorkflowStore(engine).create(name, definition, now=now, conn=conn)
    assert workflow is not None, f"a workflow named {name!r} exists already"
    return workflow

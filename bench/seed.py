"""Bulk-load drumline schedules with Core executemany, bypassing the lifecycle."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, Table, insert, update
from sqlalchemy.dialects import sqlite

from models.tables import producer_schedules, workflows
from models.types import utc_now
from models.vocabulary import ScheduleKind

PRODUCERS_PER_WORKFLOW = 1000
CHUNK = 20_000
FAR_FUTURE = timedelta(days=1)

NextRun = Callable[[int], datetime]
_EMPTY: dict[str, Any] = {}  # shared by every row: never mutated


class ScheduleSeeder:
    """Grows `producer_schedules` to N rows; 1,000 producers per workflow."""

    def __init__(self, engine: Engine, *, run: str = "demo.noop", every: str = "1h") -> None:
        self.engine = engine
        self.run = run
        self.every = every
        self.count = 0
        self._workflow_ids: list[int] = []

    def add(self, n: int, next_run_at: NextRun) -> None:
        """Insert `n` more schedules; `next_run_at(i)` for the i-th of them."""
        now = utc_now()
        done = 0
        while done < n:
            size = min(CHUNK, n - done)
            rows = [self._row(self.count + k, next_run_at(done + k), now) for k in range(size)]
            with self.engine.begin() as conn:
                self._ensure_workflows(conn, self.count + size, now)
                for row in rows:
                    row["workflow_id"] = self._workflow_ids[row.pop("_w")]
                bulk_insert(conn, producer_schedules, rows)
            self.count += size
            done += size

    def grow_to(self, n: int, *, due: int) -> None:
        """Reach `n` rows: the first `due` are due now, the rest a day from now."""
        now = utc_now()
        if self.count == 0:
            self.add(due, lambda i: now - timedelta(minutes=1) - timedelta(milliseconds=i))
        if n > self.count:
            self.add(n - self.count, lambda i: now + FAR_FUTURE + timedelta(seconds=i))

    def _ensure_workflows(self, conn: Any, total: int, now: datetime) -> None:
        needed = -(-total // PRODUCERS_PER_WORKFLOW)
        while len(self._workflow_ids) < needed:
            name = f"bench-{len(self._workflow_ids):05d}"
            result = conn.execute(
                insert(workflows)
                .values(
                    name=name,
                    status="active",
                    version=1,
                    definition={"name": name, "producers": {}},
                    created_at=now,
                    updated_at=now,
                )
                .returning(workflows.c.id)
            )
            self._workflow_ids.append(int(result.scalar_one()))

    def _row(self, index: int, next_run_at: datetime, now: datetime) -> dict[str, Any]:
        return {
            "_w": index // PRODUCERS_PER_WORKFLOW,
            "producer_name": f"p{index % PRODUCERS_PER_WORKFLOW:04d}",
            "run": self.run,
            "params": _EMPTY,
            "timeout_seconds": None,
            "schedule_type": ScheduleKind.INTERVAL,
            "schedule_value": self.every,
            "timezone": "UTC",
            "paused": False,
            "next_run_at": next_run_at,
            "claimed_until": None,
            "claim_token": None,
            "last_run_at": None,
            "last_status": None,
            "consecutive_failures": 0,
            "state": _EMPTY,
            "created_at": now,
            "updated_at": now,
        }


def bulk_insert(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """executemany of plain dicts, with each column's bind processor applied once per value.

    Core's own executemany spends ~100 µs a row on per-row parameter processing; compiling
    the INSERT once and handing the driver processed dicts loads a million rows in seconds.
    """
    if not rows:
        return
    dialect = conn.dialect
    keys = list(rows[0])
    compile_dialect = sqlite.dialect(paramstyle="named") if dialect.name == "sqlite" else dialect
    sql = str(insert(table).compile(dialect=compile_dialect, column_keys=keys))
    processors = {
        key: table.c[key].type.dialect_impl(dialect).bind_processor(dialect) for key in keys
    }
    active = {key: proc for key, proc in processors.items() if proc is not None}
    # Rows share their constant values (the same objects), so each is processed once.
    cache: dict[tuple[str, int], Any] = {}
    processed = []
    for row in rows:
        out = dict(row)
        for key, proc in active.items():
            value = out[key]
            memo = (key, id(value))
            if memo not in cache:
                cache[memo] = proc(value)
            out[key] = cache[memo]
        processed.append(out)
    conn.exec_driver_sql(sql, processed)


def release_claims(engine: Engine) -> int:
    """Clear every claim, so the claimed (never committed) rows are due again."""
    s = producer_schedules.c
    with engine.begin() as conn:
        result = conn.execute(
            update(producer_schedules)
            .where(s.claimed_until.is_not(None))
            .values(claimed_until=None, claim_token=None)
        )
    return result.rowcount

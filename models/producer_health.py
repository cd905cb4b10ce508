"""What the exporter's collector reads per scrape: each producer's health, and the due backlog.

One statement each. The last success is a correlated subquery over the producer's own runs,
which the unique (workflow, producer, slot) index serves; retention bounds how many there are.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, func, select

from models.tables import (
    can_be_due,
    producer_runs,
    producer_schedules,
    unclaimed_due,
    workflows,
)
from models.vocabulary import RunStatus

_r = producer_runs.c
_s = producer_schedules.c
_w = workflows.c


@dataclass(frozen=True)
class ProducerHealth:
    workflow: str
    producer: str
    schedule_type: str
    schedule_value: str
    timezone: str
    paused: bool
    next_run_at: datetime | None
    consecutive_failures: int
    last_success_at: datetime | None
    created_at: datetime


_LAST_SUCCESS = (
    select(func.max(_r.finished_at))
    .where(
        _r.workflow_id == _s.workflow_id,
        _r.producer_name == _s.producer_name,
        _r.status == RunStatus.SUCCEEDED,
    )
    .scalar_subquery()
)

_PRODUCERS = (
    select(
        _w.name.label("workflow"),
        _s.producer_name.label("producer"),
        _s.schedule_type,
        _s.schedule_value,
        _s.timezone,
        _s.paused,
        _s.next_run_at,
        _s.consecutive_failures,
        _LAST_SUCCESS.label("last_success_at"),
        _s.created_at,
    )
    .join(workflows, _w.id == _s.workflow_id)
    .order_by(_w.name, _s.producer_name)
)


def producer_health(engine: Engine) -> list[ProducerHealth]:
    """Every producer of every workflow, by workflow and producer name."""
    with engine.connect() as conn:
        rows = conn.execute(_PRODUCERS).all()
    return [ProducerHealth(**row._mapping) for row in rows]


def due_backlog(engine: Engine, now: datetime) -> int:
    """Rows due and not claimed by any beat: what beat has yet to send. Unclaimed rows and rows
    whose lease ran out are counted apart, each through its own partial index (as beat's claim
    reads them), so the cost follows the backlog, not the table nor the runs in flight."""
    due = select(func.count()).select_from(producer_schedules).where(_s.next_run_at <= now)
    query = select(
        due.where(unclaimed_due).scalar_subquery()
        + due.where(can_be_due, _s.claimed_until <= now).scalar_subquery()
    )
    with engine.connect() as conn:
        return int(conn.execute(query).scalar_one())

"""What `drumline ls`, `drumline status` and the live view of `drumline up` show, one query each.

Each view is one statement whatever the number of workflows and producers: the per-producer
figures (recent runs, last failure) are correlated subqueries over that producer's newest runs,
which the unique (workflow, producer, slot) index serves, so the cost of one producer's figures
stays bounded by RECENT_RUNS on both SQLite and PostgreSQL.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, case, false, func, literal, select

from models.records import ScheduleRecord
from models.tables import producer_runs, producer_schedules, workflows
from models.vocabulary import RunStatus, Trigger

# How many of a producer's newest runs are searched for its last failure and recent runs:
# more than a 1s schedule makes in a minute, so the runs of the last minute are all counted.
RECENT_RUNS = 200

_r = producer_runs.c
_s = producer_schedules.c
_w = workflows.c


@dataclass(frozen=True)
class WorkflowOverview:
    """One line of `drumline ls`."""

    name: str
    status: str
    version: int
    producers: int
    paused: int
    # The earliest next run of a producer that is not paused (a paused one's passes unrun).
    next_run_at: datetime | None


@dataclass(frozen=True)
class ProducerStatus:
    """One producer as `drumline status` and the live view show it."""

    workflow: str
    schedule: ScheduleRecord
    # Runs started at or after `recent_since` among its RECENT_RUNS newest (0 if not asked).
    recent_runs: int
    # The error of its newest run among its RECENT_RUNS newest that has one (a skipped run's
    # reason included), in full: the caller shortens it.
    last_error: str | None


def workflow_overview(engine: Engine) -> list[WorkflowOverview]:
    """Every workflow by name, with its producers counted, in one query."""
    with engine.connect() as conn:
        return [WorkflowOverview(**row._asdict()) for row in conn.execute(_OVERVIEW)]


def producer_status(
    engine: Engine, *, workflow_id: int | None = None, recent_since: datetime | None = None
) -> list[ProducerStatus]:
    """The producers of one workflow (or of all), ordered by workflow id then producer name, in
    one query. `recent_since`: count each producer's runs started since then."""
    query = _producer_status_query(recent_since)
    if workflow_id is not None:
        query = query.where(_s.workflow_id == workflow_id)
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    return [_producer_status(row) for row in rows]


_OVERVIEW = (
    select(
        _w.name,
        _w.status,
        _w.version,
        func.count(_s.id).label("producers"),
        func.coalesce(func.sum(case((_s.paused, 1), else_=0)), 0).label("paused"),
        func.min(case((_s.paused == false(), _s.next_run_at))).label("next_run_at"),
    )
    .select_from(workflows.outerjoin(producer_schedules, _s.workflow_id == _w.id))
    .group_by(_w.id, _w.name, _w.status, _w.version)
    .order_by(_w.name)
)

# A producer's newest runs: a derived table correlated to the producer row of the outer query.
_NEWEST_RUNS = (
    select(_r.scheduled_for, _r.started_at, _r.error)
    .where(_r.workflow_id == _s.workflow_id, _r.producer_name == _s.producer_name)
    .order_by(_r.scheduled_for.desc())
    .limit(RECENT_RUNS)
    .correlate(producer_schedules)
    .subquery("newest")
)
_n = _NEWEST_RUNS.c

_LAST_ERROR = (
    select(_n.error)
    .where(_n.error.is_not(None), _n.error != "")
    .order_by(_n.scheduled_for.desc())
    .limit(1)
    .scalar_subquery()
)


def _producer_status_query(recent_since: datetime | None) -> Any:
    recent: Any = literal(0)
    if recent_since is not None:
        recent = (
            select(func.count())
            .select_from(_NEWEST_RUNS)
            .where(_n.started_at >= recent_since)
            .scalar_subquery()
        )
    return (
        select(
            producer_schedules,
            _w.name.label("workflow_name"),
            recent.label("recent_runs"),
            _LAST_ERROR.label("last_error"),
        )
        .join(workflows, _w.id == _s.workflow_id)
        .order_by(_s.workflow_id, _s.producer_name)
    )


def _producer_status(row: Any) -> ProducerStatus:
    fields = row._asdict()
    return ProducerStatus(
        workflow=fields.pop("workflow_name"),
        recent_runs=fields.pop("recent_runs"),
        last_error=fields.pop("last_error"),
        schedule=ScheduleRecord(**fields),
    )


@dataclass(frozen=True)
class RunTiming:
    """When one scheduled run started against its slot, and how long it took."""

    producer: str
    scheduled_for: datetime
    started_at: datetime
    duration_ms: float | None
    status: str
    task_id: str | None


# How many of each producer's newest scheduled runs the web view's lateness figures read.
TIMED_RUNS = 1000


def failing_producers(engine: Engine) -> dict[str, int]:
    """Per workflow name, how many of its producers failed their last run(s), in one query."""
    query = (
        select(_w.name, func.count(_s.id))
        .join(workflows, _w.id == _s.workflow_id)
        .where(_s.consecutive_failures > 0)
        .group_by(_w.name)
    )
    with engine.connect() as conn:
        return {name: count for name, count in conn.execute(query)}


def run_timings(
    engine: Engine,
    workflow_id: int,
    *,
    since: datetime,
    producer: str | None = None,
    per_producer: int = TIMED_RUNS,
) -> list[RunTiming]:
    """The scheduled runs of a workflow (or one producer) since `since`, at most
    `per_producer` newest of each, oldest first, in one query (a window over the unique
    (workflow, producer, slot) index)."""
    newest = func.row_number().over(partition_by=_r.producer_name, order_by=_r.scheduled_for.desc())
    ranked = select(
        _r.producer_name.label("producer"),
        _r.scheduled_for,
        _r.started_at,
        _r.duration_ms,
        _r.status,
        _r.task_id,
        newest.label("rank"),
    ).where(
        _r.workflow_id == workflow_id,
        _r.scheduled_for >= since,
        _r.trigger == Trigger.SCHEDULE,
        _r.status != RunStatus.PENDING,
    )
    if producer is not None:
        ranked = ranked.where(_r.producer_name == producer)
    runs = ranked.subquery("ranked")
    query = (
        select(*(column for column in runs.c if column.name != "rank"))
        .where(runs.c.rank <= per_producer)
        .order_by(runs.c.producer, runs.c.scheduled_for)
    )
    with engine.connect() as conn:
        return [RunTiming(**row._asdict()) for row in conn.execute(query)]

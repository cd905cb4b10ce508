"""The SQL of `drumline backfill`: record a backfill and its run requests, read its progress,
cancel it.

Each requested slot is the slot's one run row (`producer_runs` is UNIQUE on workflow, producer
and slot): a new pending request (trigger `backfill`, its own token), inserted with ON CONFLICT
DO NOTHING, so a slot that has a row already (a scheduled run, a first backfill's request) gets
no second one; or a failed or skipped row turned back into a pending request under a new token,
fenced on that status, so two backfills cannot both take it. Beat sends the requests
(models/trigger_claims.py) when their time comes: a request's `started_at` is first set a lease
before it, as if it had been sent a lease ago, so requests go out at the backfill's rate.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, and_, func, insert, select, update

from models.backfill_plan import BackfillRange
from models.tables import backfill_slots, backfills, producer_runs
from models.transactions import insert_for
from models.vocabulary import BackfillStatus, RunStatus, SkipReason, Trigger

_r = producer_runs.c
_b = backfills.c
_bs = backfill_slots.c

# A backfill runs a slot again only if it has no successful run: it failed, or it was skipped.
RERUN_STATUSES = (RunStatus.FAILED, RunStatus.SKIPPED)
# Rows per INSERT: well inside SQLite's limit on the parameters of one statement.
CHUNK = 500
# Backfills `drumline status` shows: the newest not yet recorded done or cancelled.
SHOWN = 10

T = TypeVar("T")


@dataclass(frozen=True)
class SlotRequest:
    """One slot a backfill asks for: its run's token and task id, and when beat may send it."""

    scheduled_for: datetime
    trigger_token: str
    task_id: str
    not_before: datetime


@dataclass(frozen=True)
class BackfillRecord:
    id: int
    workflow_id: int
    producer_name: str
    range_start: datetime
    range_end: datetime
    rate: float
    status: str
    actor: str
    note: str | None
    slot_count: int  # the schedule's slots in the range, before the producer's next run
    requested: int  # those it requested: the others had a run row that was not failed/skipped
    created_at: datetime
    cancelled_at: datetime | None


@dataclass(frozen=True)
class BackfillProgress:
    """A backfill and how its requests stand now (a pruned run row counts as finished)."""

    backfill: BackfillRecord
    statuses: dict[str, int]

    @property
    def pending(self) -> int:
        return self.statuses.get(RunStatus.PENDING, 0)

    @property
    def running(self) -> int:
        return self.statuses.get(RunStatus.RUNNING, 0) + self.statuses.get(RunStatus.RETRYING, 0)

    @property
    def failed(self) -> int:
        return self.statuses.get(RunStatus.FAILED, 0)

    @property
    def done(self) -> int:
        return self.backfill.requested - self.pending - self.running

    @property
    def status(self) -> str:
        if self.backfill.status == BackfillStatus.RUNNING and self.pending + self.running == 0:
            return BackfillStatus.DONE
        return self.backfill.status


class BackfillStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create(
        self,
        *,
        workflow_id: int,
        producer_name: str,
        slots: BackfillRange,
        requests: Sequence[SlotRequest],
        rate: float,
        actor: str,
        note: str | None,
        lease: timedelta,
        now: datetime,
    ) -> BackfillRecord:
        """Record a backfill and a pending request for each of `requests` whose slot has no
        run row, or a failed or skipped one; in one transaction. `requests` come oldest first,
        one per slot of `slots`; their `not_before` paces them."""
        with self.engine.begin() as c:
            existing = _run_statuses(c, workflow_id, producer_name, slots)
            backfill_id = c.execute(
                insert(backfills)
                .values(
                    workflow_id=workflow_id,
                    producer_name=producer_name,
                    range_start=slots.start,
                    range_end=slots.end,
                    rate=rate,
                    status=BackfillStatus.RUNNING,
                    actor=actor,
                    note=note,
                    slot_count=len(slots.slots),
                    requested=0,
                    created_at=now,
                )
                .returning(_b.id)
            ).scalar_one()
            fresh = [r for r in requests if r.scheduled_for not in existing]
            again = [r for r in requests if existing.get(r.scheduled_for) in RERUN_STATUSES]
            written = _insert_requests(c, workflow_id, producer_name, fresh, lease)
            written += _rerun_requests(c, workflow_id, producer_name, again, lease)
            for chunk in _chunks(sorted(written)):
                c.execute(
                    insert(backfill_slots),
                    [{"backfill_id": backfill_id, "scheduled_for": slot} for slot in chunk],
                )
            status = BackfillStatus.RUNNING if written else BackfillStatus.DONE
            row = c.execute(
                update(backfills)
                .where(_b.id == backfill_id)
                .values(requested=len(written), status=status)
                .returning(*backfills.c)
            ).one()
        return BackfillRecord(**row._asdict())

    def unrun(self, workflow_id: int, producer_name: str, slots: BackfillRange) -> list[datetime]:
        """The slots of `slots` with no run row, or a failed or skipped one, oldest first."""
        with self.engine.connect() as c:
            existing = _run_statuses(c, workflow_id, producer_name, slots)
        return [
            slot for slot in slots.slots if slot not in existing or existing[slot] in RERUN_STATUSES
        ]

    def progress(self, workflow_id: int, *, limit: int = SHOWN) -> list[BackfillProgress]:
        """The workflow's newest backfills still recorded running, with their requests'
        statuses, newest first. One found finished is recorded done (fenced on `running`),
        so it is shown once more, as done, and then no longer."""
        with self.engine.begin() as c:
            rows = c.execute(
                select(backfills)
                .where(_b.workflow_id == workflow_id, _b.status == BackfillStatus.RUNNING)
                .order_by(_b.id.desc())
                .limit(limit)
            ).all()
            records = [BackfillRecord(**row._asdict()) for row in rows]
            counts: dict[int, Counter[str]] = {record.id: Counter() for record in records}
            for backfill_id, status, count in c.execute(_statuses_of(list(counts))):
                counts[backfill_id][status] = count
            shown = [BackfillProgress(r, dict(counts[r.id])) for r in records]
            finished = [p.backfill.id for p in shown if p.status == BackfillStatus.DONE]
            if finished:
                c.execute(
                    update(backfills)
                    .where(_b.id.in_(finished), _b.status == BackfillStatus.RUNNING)
                    .values(status=BackfillStatus.DONE)
                )
        return shown

    def cancel(self, backfill_id: int, now: datetime) -> tuple[BackfillRecord, int] | None:
        """Withdraw a running backfill's requests that have not started: each is recorded
        skipped (`cancelled`), so a message already sent for it runs nothing. Returns the
        backfill and how many requests were withdrawn; None if no such backfill is running."""
        with self.engine.begin() as c:
            row = c.execute(
                update(backfills)
                .where(_b.id == backfill_id, _b.status == BackfillStatus.RUNNING)
                .values(status=BackfillStatus.CANCELLED, cancelled_at=now)
                .returning(*backfills.c)
            ).first()
            if row is None:
                return None
            record = BackfillRecord(**row._asdict())
            withdrawn = c.execute(
                update(producer_runs)
                .where(
                    _r.workflow_id == record.workflow_id,
                    _r.producer_name == record.producer_name,
                    _r.scheduled_for.in_(
                        select(_bs.scheduled_for).where(_bs.backfill_id == backfill_id)
                    ),
                    _r.trigger == Trigger.BACKFILL,
                    _r.status == RunStatus.PENDING,
                )
                .values(status=RunStatus.SKIPPED, error=SkipReason.CANCELLED, finished_at=now)
            ).rowcount
        return record, withdrawn


def _run_statuses(
    c: Connection, workflow_id: int, producer_name: str, slots: BackfillRange
) -> dict[datetime, str]:
    """The status of each run row of the producer in the range, by slot."""
    rows = c.execute(
        select(_r.scheduled_for, _r.status).where(
            _r.workflow_id == workflow_id,
            _r.producer_name == producer_name,
            _r.scheduled_for.between(slots.start, slots.end),
        )
    )
    return {slot: status for slot, status in rows}


def _insert_requests(
    c: Connection,
    workflow_id: int,
    producer_name: str,
    requests: Sequence[SlotRequest],
    lease: timedelta,
) -> list[datetime]:
    """Insert pending requests; a slot that got a row meanwhile keeps it (DO NOTHING)."""
    written: list[datetime] = []
    for chunk in _chunks(requests):
        rows = [
            {
                "workflow_id": workflow_id,
                "producer_name": producer_name,
                "scheduled_for": request.scheduled_for,
                "trigger": Trigger.BACKFILL,
                "task_id": request.task_id,
                "attempt": 1,
                "status": RunStatus.PENDING,
                "started_at": request.not_before - lease,
                "trigger_token": request.trigger_token,
            }
            for request in chunk
        ]
        statement = insert_for(c, producer_runs).values(rows).on_conflict_do_nothing()
        written += c.execute(statement.returning(_r.scheduled_for)).scalars()
    return written


def _rerun_requests(
    c: Connection,
    workflow_id: int,
    producer_name: str,
    requests: Sequence[SlotRequest],
    lease: timedelta,
) -> list[datetime]:
    """Turn failed or skipped rows back into pending requests, each only if still so."""
    written = []
    for request in requests:
        rerun = c.execute(
            update(producer_runs)
            .where(
                _r.workflow_id == workflow_id,
                _r.producer_name == producer_name,
                _r.scheduled_for == request.scheduled_for,
                _r.status.in_(RERUN_STATUSES),
            )
            .values(
                trigger=Trigger.BACKFILL,
                task_id=request.task_id,
                attempt=1,
                status=RunStatus.PENDING,
                started_at=request.not_before - lease,
                finished_at=None,
                duration_ms=None,
                error=None,
                result=None,
                trigger_token=request.trigger_token,
            )
        )
        if rerun.rowcount == 1:
            written.append(request.scheduled_for)
    return written


def _statuses_of(backfill_ids: list[int]) -> Any:
    """(backfill id, run status, count) of the backfills' requested slots."""
    runs = and_(
        _r.workflow_id == _b.workflow_id,
        _r.producer_name == _b.producer_name,
        _r.scheduled_for == _bs.scheduled_for,
    )
    return (
        select(_bs.backfill_id, _r.status, func.count())
        .select_from(backfill_slots.join(backfills).join(producer_runs, runs))
        .where(_bs.backfill_id.in_(backfill_ids))
        .group_by(_bs.backfill_id, _r.status)
    )


def _chunks(items: Sequence[T]) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]

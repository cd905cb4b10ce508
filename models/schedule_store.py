"""Reads and writes of `producer_schedules`: deploy-time upserts, beat claims, run commits."""

from __future__ import annotations

import builtins
import uuid
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import (
    Boolean,
    Connection,
    Engine,
    Integer,
    Row,
    Update,
    bindparam,
    case,
    delete,
    func,
    select,
    update,
)

from models.records import ClaimedSlot, JSONDict, ScheduleRecord, ScheduleSpec, SlotOutcome
from models.tables import can_be_due, producer_schedules, workflows
from models.transactions import bind, insert_for, transaction
from models.vocabulary import RunStatus

_s = producer_schedules.c


class ProducerScheduleStore:
    """One row per (workflow, producer): its schedule, next run, claim and carried state."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def get(
        self, workflow_id: int, producer_name: str, conn: Connection | None = None
    ) -> ScheduleRecord | None:
        with transaction(self.engine, conn) as c:
            row = c.execute(
                select(producer_schedules).where(
                    _s.workflow_id == workflow_id, _s.producer_name == producer_name
                )
            ).first()
        return _record(row) if row else None

    def list(
        self, workflow_id: int | None = None, conn: Connection | None = None
    ) -> list[ScheduleRecord]:
        query = select(producer_schedules).order_by(_s.workflow_id, _s.producer_name)
        if workflow_id is not None:
            query = query.where(_s.workflow_id == workflow_id)
        with transaction(self.engine, conn) as c:
            return [_record(row) for row in c.execute(query)]

    def upsert(
        self, spec: ScheduleSpec, *, now: datetime, conn: Connection | None = None
    ) -> ScheduleRecord:
        """Insert the row or rewrite its schedule, in one INSERT ... ON CONFLICT statement.

        Rewriting a schedule clears any claim: a run in flight then commits nothing (its token
        no longer matches) and the new `next_run_at` stands. The carried state, last run and
        failure count are kept.
        """
        values = {
            "workflow_id": spec.workflow_id,
            "producer_name": spec.producer_name,
            "run": spec.run,
            "params": spec.params,
            "timeout_seconds": spec.timeout_seconds,
            "schedule_type": spec.schedule_type,
            "schedule_value": spec.schedule_value,
            "timezone": spec.timezone,
            "paused": spec.paused,
            "next_run_at": spec.next_run_at,
            "claimed_until": None,
            "claim_token": None,
            "consecutive_failures": 0,
            "state": {},
            "created_at": now,
            "updated_at": now,
        }
        keep = {"workflow_id", "producer_name", "consecutive_failures", "state", "created_at"}
        with transaction(self.engine, conn) as c:
            stmt = insert_for(c, producer_schedules).values(**values)
            stmt = stmt.on_conflict_do_update(
                index_elements=[_s.workflow_id, _s.producer_name],
                set_={key: stmt.excluded[key] for key in values if key not in keep},
            ).returning(*producer_schedules.c)
            return _record(c.execute(stmt).one())

    def update_config(
        self,
        workflow_id: int,
        producer_name: str,
        *,
        run: str,
        params: JSONDict,
        timeout_seconds: float | None,
        now: datetime,
        conn: Connection | None = None,
    ) -> bool:
        """Change what a producer runs with, leaving its schedule, claim and next run alone."""
        with transaction(self.engine, conn) as c:
            result = c.execute(
                update(producer_schedules)
                .where(_s.workflow_id == workflow_id, _s.producer_name == producer_name)
                .values(run=run, params=params, timeout_seconds=timeout_seconds, updated_at=now)
            )
        return result.rowcount > 0

    def delete(self, workflow_id: int, producer_name: str, conn: Connection | None = None) -> bool:
        with transaction(self.engine, conn) as c:
            result = c.execute(
                delete(producer_schedules).where(
                    _s.workflow_id == workflow_id, _s.producer_name == producer_name
                )
            )
        return result.rowcount > 0

    def delete_for_workflow(self, workflow_id: int, conn: Connection | None = None) -> int:
        with transaction(self.engine, conn) as c:
            result = c.execute(delete(producer_schedules).where(_s.workflow_id == workflow_id))
        return result.rowcount

    def set_paused(
        self, workflow_id: int, paused: bool, *, now: datetime, conn: Connection | None = None
    ) -> int:
        with transaction(self.engine, conn) as c:
            result = c.execute(
                update(producer_schedules)
                .where(_s.workflow_id == workflow_id)
                .values(paused=paused, updated_at=now)
            )
        return result.rowcount

    def set_next_run(
        self,
        schedule_id: int,
        next_run_at: datetime | None,
        *,
        now: datetime,
        conn: Connection | None = None,
    ) -> None:
        with transaction(self.engine, conn) as c:
            c.execute(
                update(producer_schedules)
                .where(_s.id == schedule_id)
                .values(next_run_at=next_run_at, updated_at=now)
            )

    def move_next_run(
        self,
        schedule_id: int,
        *,
        read: datetime,
        to: datetime | None,
        now: datetime,
        conn: Connection | None = None,
    ) -> bool:
        """Set the next run to `to` only if it is still `read`, the value it was computed
        from; False (nothing written) if a run's commit moved it meanwhile.

        Any claim on the old slot goes with it: a message still queued for that slot is stale
        now (it names another slot), and its claim must not hold the new slot back for a lease.
        """
        with transaction(self.engine, conn) as c:
            result = c.execute(
                update(producer_schedules)
                .where(_s.id == schedule_id, _s.next_run_at == read)
                .values(next_run_at=to, claimed_until=None, claim_token=None, updated_at=now)
            )
        return result.rowcount == 1

    def claim_due(
        self,
        *,
        now: datetime,
        lease: timedelta,
        limit: int,
        conn: Connection | None = None,
    ) -> builtins.list[ClaimedSlot]:
        """Claim up to `limit` due rows in one statement, oldest first.

        Due: not paused, `next_run_at <= now`, and no live claim. PostgreSQL skips rows another
        beat is claiming (FOR UPDATE SKIP LOCKED); SQLite serialises writers (BEGIN IMMEDIATE).
        """
        token = uuid.uuid4().hex
        claimed_until = now + lease
        with transaction(self.engine, conn) as c:
            rows = c.execute(
                _claim_statement(c.dialect.name),
                {"b_now": now, "b_limit": limit, "b_until": claimed_until, "b_token": token},
            ).all()
        slots = [
            ClaimedSlot(
                schedule_id=row.id,
                workflow_id=row.workflow_id,
                workflow_name=row.workflow_name,
                producer_name=row.producer_name,
                scheduled_for=row.next_run_at,
                claim_token=token,
                claimed_until=claimed_until,
            )
            for row in rows
        ]
        return sorted(slots, key=lambda slot: slot.scheduled_for)

    def release_claims(
        self, slots: builtins.list[ClaimedSlot], conn: Connection | None = None
    ) -> int:
        """Give back claims that were never sent, so the slots are due again at once.

        A claim a worker has already taken (its lease renewed by `take_claim`) is left alone:
        releasing it would let the slot be sent and run a second time.
        """
        if not slots:
            return 0
        with transaction(self.engine, conn) as c:
            result = c.execute(
                update(producer_schedules)
                .where(
                    _s.id.in_([slot.schedule_id for slot in slots]),
                    _s.claim_token == slots[0].claim_token,
                    _s.claimed_until == slots[0].claimed_until,
                )
                .values(claimed_until=None, claim_token=None)
            )
        return result.rowcount

    def next_wakeup(self, *, now: datetime, conn: Connection | None = None) -> datetime | None:
        """The earliest instant a row can become due: a next run, or a live claim's expiry."""
        with transaction(self.engine, conn) as c:
            next_run, lease_end = c.execute(_NEXT_WAKEUP, {"b_now": now}).one()
        candidates = [moment for moment in (next_run, lease_end) if moment is not None]
        return min(candidates) if candidates else None

    def take_claim(
        self,
        workflow_id: int,
        producer_name: str,
        claim_token: str,
        *,
        workflow_name: str,
        scheduled_for: datetime,
        now: datetime,
        lease: timedelta,
        conn: Connection | None = None,
    ) -> ScheduleRecord | None:
        """Start a run under its claim, in one statement: only if `claim_token` still holds a
        live claim on exactly the slot `scheduled_for` (the row's next run) of the workflow
        named `workflow_name`. The claim is then renewed for a whole lease; if the producer is
        paused it is released instead (the returned row says `paused`), so the slot is skipped.

        None means the message is stale (re-claimed, rescheduled, or its lease ran out, after
        which beat may send the slot again) or forged (a slot or name the claim does not hold).
        Renewing keeps beat from re-sending the slot while the run, bounded by a hard time
        limit shorter than the lease, is still going.
        """
        params = take_claim_params(
            workflow_id,
            producer_name,
            claim_token,
            workflow_name=workflow_name,
            scheduled_for=scheduled_for,
            now=now,
            lease=lease,
        )
        with transaction(self.engine, conn) as c:
            row = c.execute(TAKE_CLAIM, params).first()
        return _record(row) if row else None

    def commit_slot(
        self,
        schedule_id: int,
        claim_token: str,
        outcome: SlotOutcome,
        *,
        now: datetime,
        conn: Connection | None = None,
    ) -> bool:
        """Write a finished slot back, only if `claim_token` still holds the claim.

        False means the claim was lost (lease expired and re-sent, or the schedule changed):
        nothing is written, so a run never overwrites a newer schedule.
        """
        params = commit_slot_params(schedule_id, claim_token, outcome, now=now)
        with transaction(self.engine, conn) as c:
            return c.execute(COMMIT_SLOT, params).rowcount == 1

    def record_manual_run(
        self,
        schedule_id: int,
        outcome: SlotOutcome,
        *,
        now: datetime,
        conn: Connection | None = None,
    ) -> None:
        """Note a triggered run's result and state without touching the schedule or its claim."""
        with transaction(self.engine, conn) as c:
            c.execute(
                update(producer_schedules)
                .where(_s.id == schedule_id)
                .values(
                    last_run_at=outcome.ran_at,
                    last_status=outcome.status,
                    state=outcome.state,
                    updated_at=now,
                )
            )


# Beat's two statements, run every tick, built once like the run path's (below).
_NOW = bind("b_now", _s.next_run_at)
# No live claim: never claimed, released, or its lease has run out.
_UNCLAIMED = _s.claimed_until.is_(None) | (_s.claimed_until <= _NOW)


@cache
def _claim_statement(dialect: str) -> Update:
    """Claim the `b_limit` oldest due rows; PostgreSQL skips rows another beat is claiming."""
    due = (
        select(_s.id)
        .where(can_be_due, _s.next_run_at <= _NOW, _UNCLAIMED)
        .order_by(_s.next_run_at)
        .limit(bindparam("b_limit", type_=Integer()))
    )
    if dialect == "postgresql":
        due = due.with_for_update(skip_locked=True)
    workflow_name = (
        select(workflows.c.name).where(workflows.c.id == _s.workflow_id).scalar_subquery()
    )
    return (
        update(producer_schedules)
        .where(_s.id.in_(due.scalar_subquery()))
        .values(
            claimed_until=bind("b_until", _s.claimed_until),
            claim_token=bind("b_token", _s.claim_token),
        )
        .returning(
            _s.id,
            _s.workflow_id,
            _s.producer_name,
            _s.next_run_at,
            workflow_name.label("workflow_name"),
        )
    )


# The earliest next run of a row that can be due, and the earliest end of a live claim.
_NEXT_WAKEUP = select(
    select(func.min(_s.next_run_at)).where(can_be_due, _UNCLAIMED).scalar_subquery(),
    select(func.min(_s.claimed_until))
    .where(_s.claimed_until.is_not(None), _s.claimed_until > _NOW)
    .scalar_subquery(),
)


def _record(row: Row[Any]) -> ScheduleRecord:
    return ScheduleRecord(**row._asdict())


def take_claim_params(
    workflow_id: int,
    producer_name: str,
    claim_token: str,
    *,
    workflow_name: str,
    scheduled_for: datetime,
    now: datetime,
    lease: timedelta,
) -> dict[str, Any]:
    """The parameters of TAKE_CLAIM."""
    return {
        "b_workflow_id": workflow_id,
        "b_workflow_name": workflow_name,
        "b_producer_name": producer_name,
        "b_claim_token": claim_token,
        "b_claimed_slot": scheduled_for,
        "b_now": now,
        "b_until": now + lease,
    }


def commit_slot_params(
    schedule_id: int, claim_token: str, outcome: SlotOutcome, *, now: datetime
) -> dict[str, Any]:
    """The parameters of COMMIT_SLOT."""
    return {
        "b_id": schedule_id,
        "b_claim_token": claim_token,
        "b_next_run_at": outcome.next_run_at,
        "b_last_run_at": outcome.ran_at,
        "b_last_status": outcome.status,
        "b_succeeded": outcome.status == RunStatus.SUCCEEDED,
        "b_state": outcome.state,
        "b_now": now,
    }


# The two statements every scheduled run executes, built once (see `models.transactions.bind`)
# and reused inside PostgreSQL's single-statement run path (models.scheduled_runs).
# A message names its workflow by id and name, and its slot: the claim must hold all three.
_NAMED_WORKFLOW = (
    select(workflows.c.id)
    .where(workflows.c.name == bind("b_workflow_name", workflows.c.name))
    .scalar_subquery()
)
TAKE_CLAIM: Update = (
    update(producer_schedules)
    .where(
        _s.workflow_id == bind("b_workflow_id", _s.workflow_id),
        _s.workflow_id == _NAMED_WORKFLOW,
        _s.producer_name == bind("b_producer_name", _s.producer_name),
        _s.claim_token == bind("b_claim_token", _s.claim_token),
        _s.claimed_until > bind("b_now", _s.claimed_until),
        _s.next_run_at == bind("b_claimed_slot", _s.next_run_at),
    )
    .values(
        # A paused producer's slot is skipped: its claim is released, not renewed.
        claimed_until=case((_s.paused, None), else_=bind("b_until", _s.claimed_until)),
        claim_token=case((_s.paused, None), else_=_s.claim_token),
    )
    .returning(*producer_schedules.c)
)

COMMIT_SLOT: Update = (
    update(producer_schedules)
    .where(
        _s.id == bind("b_id", _s.id),
        _s.claim_token == bind("b_claim_token", _s.claim_token),
    )
    .values(
        next_run_at=bind("b_next_run_at", _s.next_run_at),
        last_run_at=bind("b_last_run_at", _s.last_run_at),
        last_status=bind("b_last_status", _s.last_status),
        consecutive_failures=case(
            (bindparam("b_succeeded", type_=Boolean()), 0), else_=_s.consecutive_failures + 1
        ),
        state=bind("b_state", _s.state),
        claimed_until=None,
        claim_token=None,
        updated_at=bind("b_now", _s.updated_at),
    )
)

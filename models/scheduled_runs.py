"""The two writes of every scheduled run, each one atomic step.

Starting a run renews its claim and records the run row; finishing it writes the schedule back
under the claim token and finishes the run row. On PostgreSQL each step is one statement (a
data-modifying CTE) sent in autocommit: one round trip instead of four (BEGIN, two statements,
COMMIT), which is most of what a short run costs the worker. SQLite cannot modify data inside
a CTE, so there each step is two statements in one transaction. The rules themselves live in
the stores; this module only sequences them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, Row, case, exists, literal, select, true
from sqlalchemy.dialects import postgresql

from models.records import RunRecord, ScheduleRecord, SlotOutcome
from models.run_store import (
    FINISH_RUN,
    RunStore,
    begin_params,
    finish_params,
    take_over_running,
)
from models.schedule_store import (
    COMMIT_SLOT,
    TAKE_CLAIM,
    ProducerScheduleStore,
    commit_slot_params,
    take_claim_params,
)
from models.tables import producer_runs, producer_schedules
from models.transactions import bind
from models.vocabulary import RunStatus, SkipReason, Trigger

_r = producer_runs.c
_RUN_PREFIX = "run__"  # the run row's columns, beside the schedule row's


@dataclass(frozen=True)
class StartedSlot:
    """A slot whose claim this run now holds. `run` is None if the slot already finished."""

    schedule: ScheduleRecord
    run: RunRecord | None


class ScheduledRunStore:
    """Start and finish claimed runs; a stale claim token writes nothing."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.schedules = ProducerScheduleStore(engine)
        self.runs = RunStore(engine)
        self._single_statement = engine.dialect.name == "postgresql"

    def start(
        self,
        *,
        workflow_id: int,
        workflow_name: str,
        producer_name: str,
        scheduled_for: datetime,
        claim_token: str,
        task_id: str | None,
        now: datetime,
        lease: timedelta,
    ) -> StartedSlot | None:
        """Renew the claim for a whole lease and record the run row (attempt + 1 if an earlier
        attempt died running). A paused producer's slot is recorded skipped and its claim
        released instead, in the same step. None: the claim does not hold this slot (a stale or
        forged message); nothing was written."""
        claim = take_claim_params(
            workflow_id,
            producer_name,
            claim_token,
            workflow_name=workflow_name,
            scheduled_for=scheduled_for,
            now=now,
            lease=lease,
        )
        begin = begin_params(
            workflow_id, producer_name, scheduled_for, "schedule", task_id, now=now
        )
        if self._single_statement:
            with self._autocommit() as conn:
                row = conn.execute(_START_PG, claim | begin).first()
            return None if row is None else _started_slot(row)
        with self.engine.begin() as conn:
            schedule = self.schedules.take_claim(
                workflow_id,
                producer_name,
                claim_token,
                workflow_name=workflow_name,
                scheduled_for=scheduled_for,
                now=now,
                lease=lease,
                conn=conn,
            )
            if schedule is None:
                return None
            run = self.runs.begin(
                workflow_id=workflow_id,
                producer_name=producer_name,
                scheduled_for=scheduled_for,
                trigger=Trigger.SCHEDULE,
                task_id=task_id,
                now=now,
                skipped=SkipReason.PAUSED if schedule.paused else None,
                conn=conn,
            )
        return StartedSlot(schedule, run)

    def finish(
        self,
        *,
        schedule_id: int,
        claim_token: str,
        outcome: SlotOutcome,
        run_id: int,
        duration_ms: float,
        error: str | None,
        result: Any,
        now: datetime,
    ) -> str:
        """Write the outcome back and finish the run row; returns the run's final status:
        the outcome's, or `superseded` if the claim was lost and the schedule left alone."""
        if self._single_statement:
            params = commit_slot_params(schedule_id, claim_token, outcome, now=now) | finish_params(
                run_id, outcome.status, now, duration_ms, error, result
            )
            with self._autocommit() as conn:
                return str(conn.execute(_FINISH_PG, params).scalar_one())
        with self.engine.begin() as conn:
            held = self.schedules.commit_slot(schedule_id, claim_token, outcome, now=now, conn=conn)
            status = outcome.status if held else RunStatus.SUPERSEDED
            self.runs.finish(
                run_id,
                status=status,
                finished_at=now,
                duration_ms=duration_ms,
                error=error,
                result=result,
                conn=conn,
            )
        return status

    def _autocommit(self) -> Connection:
        return self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")


def _started_slot(row: Row[Any]) -> StartedSlot:
    fields = row._asdict()
    run = {
        key[len(_RUN_PREFIX) :]: fields.pop(key)
        for key in list(fields)
        if key.startswith(_RUN_PREFIX)
    }
    del run["trigger_token"]  # never set on a scheduled run
    return StartedSlot(
        schedule=ScheduleRecord(**fields),
        run=None if run["id"] is None else RunRecord(**run),
    )


def _start_statement() -> Any:
    """TAKE_CLAIM, then the run row inserted only if the claim was taken, in one statement:
    running, or skipped with the reason `paused` if the claimed row is paused."""
    claim = TAKE_CLAIM.cte("claim")
    paused = claim.c.paused
    run = (
        take_over_running(
            postgresql.insert(producer_runs).from_select(
                [
                    _r.workflow_id,
                    _r.producer_name,
                    _r.scheduled_for,
                    _r.trigger,
                    _r.task_id,
                    _r.attempt,
                    _r.status,
                    _r.error,
                    _r.finished_at,
                    _r.started_at,
                ],
                select(
                    claim.c.workflow_id,
                    claim.c.producer_name,
                    bind("b_scheduled_for", _r.scheduled_for),
                    bind("b_trigger", _r.trigger),
                    bind("b_task_id", _r.task_id),
                    literal(1),
                    case((paused, literal(RunStatus.SKIPPED.value)), else_=RunStatus.RUNNING.value),
                    case((paused, literal(SkipReason.PAUSED.value)), else_=None),
                    case((paused, bind("b_started_at", _r.started_at)), else_=None),
                    bind("b_started_at", _r.started_at),
                ),
            )
        )
        .returning(*producer_runs.c)
        .cte("run")
    )
    return select(
        *(claim.c[column.name] for column in producer_schedules.c),
        *(run.c[column.name].label(_RUN_PREFIX + column.name) for column in producer_runs.c),
    ).select_from(claim.outerjoin(run, true()))


def _finish_statement() -> Any:
    """COMMIT_SLOT, then the run row finished as superseded if it wrote nothing."""
    slot = COMMIT_SLOT.returning(producer_schedules.c.id).cte("slot")
    held = exists(select(slot.c.id))
    return (
        FINISH_RUN.values(
            status=case((held, bind("b_status", _r.status)), else_=RunStatus.SUPERSEDED.value)
        )
        .add_cte(slot)
        .returning(_r.status)
    )


_START_PG = _start_statement()
_FINISH_PG = _finish_statement()

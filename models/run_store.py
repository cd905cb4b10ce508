"""Reads of `producer_runs` (one row per workflow, producer and slot) and the trigger requests
`drumline trigger` writes there; workers start and finish runs in `models.run_path`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, Row, delete, select, update

from models.records import RunRecord
from models.tables import producer_runs
from models.transactions import insert_for, transaction
from models.vocabulary import RunStatus, SkipReason, Trigger

_r = producer_runs.c

TERMINAL_STATUSES = frozenset(RunStatus) - {
    RunStatus.RUNNING,
    RunStatus.PENDING,
    RunStatus.RETRYING,
}


class RunStore:
    """Trigger requests and run history; one row per slot (UNIQUE), see `models.run_path`."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def request_trigger(
        self,
        *,
        workflow_id: int,
        producer_name: str,
        scheduled_for: datetime,
        trigger_token: str,
        task_id: str,
        now: datetime,
        conn: Connection | None = None,
    ) -> RunRecord | None:
        """Record a manual run request as a pending row; None if the slot is taken already.

        The row is the only thing that makes a manual `run_producer` message runnable: the
        worker starts it only if the message names this slot and carries `trigger_token`.
        """
        with transaction(self.engine, conn) as c:
            row = c.execute(
                insert_for(c, producer_runs)
                .values(
                    workflow_id=workflow_id,
                    producer_name=producer_name,
                    scheduled_for=scheduled_for,
                    trigger=Trigger.MANUAL,
                    task_id=task_id,
                    attempt=1,
                    status=RunStatus.PENDING,
                    started_at=now,
                    trigger_token=trigger_token,
                )
                .on_conflict_do_nothing()
                .returning(*producer_runs.c)
            ).first()
        return run_record(row) if row else None

    def withdraw_trigger(self, run_id: int, conn: Connection | None = None) -> bool:
        """Delete a trigger request that was never sent (still pending)."""
        with transaction(self.engine, conn) as c:
            result = c.execute(
                delete(producer_runs).where(_r.id == run_id, _r.status == RunStatus.PENDING)
            )
        return result.rowcount == 1

    def cancel_trigger(
        self,
        workflow_id: int,
        producer_name: str,
        scheduled_for: datetime,
        now: datetime,
        conn: Connection | None = None,
    ) -> RunRecord | None:
        """Record a trigger request that has not started as skipped (`cancelled`), so a
        message already sent for it runs nothing; None if no such request is pending."""
        with transaction(self.engine, conn) as c:
            row = c.execute(
                update(producer_runs)
                .where(
                    _r.workflow_id == workflow_id,
                    _r.producer_name == producer_name,
                    _r.scheduled_for == scheduled_for,
                    _r.trigger == Trigger.MANUAL,
                    _r.status == RunStatus.PENDING,
                )
                .values(status=RunStatus.SKIPPED, error=SkipReason.CANCELLED, finished_at=now)
                .returning(*producer_runs.c)
            ).first()
        return run_record(row) if row else None

    def get_slot(
        self,
        workflow_id: int,
        producer_name: str,
        scheduled_for: datetime,
        conn: Connection | None = None,
    ) -> RunRecord | None:
        with transaction(self.engine, conn) as c:
            row = c.execute(
                select(producer_runs).where(
                    _r.workflow_id == workflow_id,
                    _r.producer_name == producer_name,
                    _r.scheduled_for == scheduled_for,
                )
            ).first()
        return run_record(row) if row else None

    def list(
        self,
        workflow_id: int,
        *,
        producer_name: str | None = None,
        limit: int | None = None,
        conn: Connection | None = None,
    ) -> list[RunRecord]:
        """Runs of a workflow, newest slot first."""
        query = (
            select(producer_runs)
            .where(_r.workflow_id == workflow_id)
            .order_by(_r.scheduled_for.desc(), _r.producer_name)
        )
        if producer_name is not None:
            query = query.where(_r.producer_name == producer_name)
        if limit is not None:
            query = query.limit(limit)
        with transaction(self.engine, conn) as c:
            return [run_record(row) for row in c.execute(query)]


def run_record(row: Row[Any]) -> RunRecord:
    """A run row as a record, without its trigger token."""
    fields = row._asdict()
    fields.pop("trigger_token", None)  # a secret: no record carries it beyond the store
    return RunRecord(**fields)

"""Reads and writes of `producer_runs`: one row per (workflow, producer, slot)."""

from __future__ import annotations

from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import Connection, Engine, Row, Update, delete, select, update

from models.records import RunRecord
from models.tables import producer_runs, workflows
from models.transactions import bind, insert_for, transaction
from models.vocabulary import RunStatus

_r = producer_runs.c

TERMINAL_STATUSES = frozenset(RunStatus) - {RunStatus.RUNNING, RunStatus.PENDING}


class RunStore:
    """Run history. The UNIQUE slot key makes starting and committing a slot idempotent."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def begin(
        self,
        *,
        workflow_id: int,
        producer_name: str,
        scheduled_for: datetime,
        trigger: str,
        task_id: str | None,
        now: datetime,
        skipped: str | None = None,
        conn: Connection | None = None,
    ) -> RunRecord | None:
        """Record that a slot starts running (or, with a `skipped` reason such as
        SkipReason.PAUSED, that it was skipped), in one statement.

        A slot whose earlier attempt died while running is taken over (attempt + 1). A slot
        that already finished returns None: it must not run again.
        """
        params = begin_params(workflow_id, producer_name, scheduled_for, trigger, task_id, now=now)
        params |= start_outcome_params(skipped, now)
        with transaction(self.engine, conn) as c:
            row = c.execute(_begin_statement(c.dialect.name), params).first()
        return _record(row) if row else None

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
                    trigger="manual",
                    task_id=task_id,
                    attempt=1,
                    status=RunStatus.PENDING,
                    started_at=now,
                    trigger_token=trigger_token,
                )
                .on_conflict_do_nothing()
                .returning(*producer_runs.c)
            ).first()
        return _record(row) if row else None

    def withdraw_trigger(self, run_id: int, conn: Connection | None = None) -> bool:
        """Delete a trigger request that was never sent (still pending)."""
        with transaction(self.engine, conn) as c:
            result = c.execute(
                delete(producer_runs).where(_r.id == run_id, _r.status == RunStatus.PENDING)
            )
        return result.rowcount == 1

    def start_triggered(
        self,
        *,
        workflow_id: int,
        producer_name: str,
        scheduled_for: datetime,
        trigger_token: str,
        task_id: str | None,
        workflow_name: str,
        now: datetime,
        skipped: str | None,
        conn: Connection | None = None,
    ) -> RunRecord | None:
        """Start the pending trigger request this message names, in one statement: only if
        workflow (id and name), producer, slot and token all match and it is still pending.
        With a `skipped` reason the request is finished as skipped instead. None: no such
        request (a forged or replayed message), and nothing was written."""
        with transaction(self.engine, conn) as c:
            row = c.execute(
                _START_TRIGGERED,
                {
                    "b_workflow_id": workflow_id,
                    "b_workflow_name": workflow_name,
                    "b_producer_name": producer_name,
                    "b_scheduled_for": scheduled_for,
                    "b_trigger_token": trigger_token,
                    "b_task_id": task_id,
                    "b_started_at": now,
                }
                | start_outcome_params(skipped, now),
            ).first()
        return _record(row) if row else None

    def finish(
        self,
        run_id: int,
        *,
        status: str,
        finished_at: datetime,
        duration_ms: float,
        error: str | None,
        result: Any,
        conn: Connection | None = None,
    ) -> None:
        params = finish_params(run_id, status, finished_at, duration_ms, error, result)
        with transaction(self.engine, conn) as c:
            c.execute(FINISH_RUN, params)

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
        return _record(row) if row else None

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
            return [_record(row) for row in c.execute(query)]


def _record(row: Row[Any]) -> RunRecord:
    fields = row._asdict()
    fields.pop("trigger_token", None)  # a secret: no record carries it beyond the store
    return RunRecord(**fields)


def begin_params(
    workflow_id: int,
    producer_name: str,
    scheduled_for: datetime,
    trigger: str,
    task_id: str | None,
    *,
    now: datetime,
) -> dict[str, Any]:
    """The parameters of the begin statement (and of its PostgreSQL single-statement form)."""
    return {
        "b_workflow_id": workflow_id,
        "b_producer_name": producer_name,
        "b_scheduled_for": scheduled_for,
        "b_trigger": trigger,
        "b_task_id": task_id,
        "b_started_at": now,
    }


def start_outcome_params(skipped: str | None, now: datetime) -> dict[str, Any]:
    """How a started slot's row begins: running, or skipped (and finished) for a reason."""
    if skipped is not None:
        return {"b_start_status": RunStatus.SKIPPED, "b_start_error": skipped, "b_start_end": now}
    return {"b_start_status": RunStatus.RUNNING, "b_start_error": None, "b_start_end": None}


def finish_params(
    run_id: int,
    status: str,
    finished_at: datetime,
    duration_ms: float,
    error: str | None,
    result: Any,
) -> dict[str, Any]:
    """The parameters of FINISH_RUN."""
    return {
        "b_run_id": run_id,
        "b_status": status,
        "b_finished_at": finished_at,
        "b_duration_ms": duration_ms,
        "b_error": error,
        "b_result": result,
    }


@cache
def _begin_statement(dialect: str) -> Any:
    """INSERT the running row, or take over the slot (see `take_over_running`)."""
    return take_over_running(
        insert_for(dialect, producer_runs).values(
            workflow_id=bind("b_workflow_id", _r.workflow_id),
            producer_name=bind("b_producer_name", _r.producer_name),
            scheduled_for=bind("b_scheduled_for", _r.scheduled_for),
            trigger=bind("b_trigger", _r.trigger),
            task_id=bind("b_task_id", _r.task_id),
            attempt=1,
            status=bind("b_start_status", _r.status),
            error=bind("b_start_error", _r.error),
            finished_at=bind("b_start_end", _r.finished_at),
            started_at=bind("b_started_at", _r.started_at),
        )
    ).returning(*producer_runs.c)


def take_over_running(stmt: Any) -> Any:
    """The rule for an INSERT of a starting row into a slot that has one already: take over a
    slot whose last attempt died running (still `running`: attempt + 1, now running or skipped
    as the INSERT says); leave a finished slot alone, so the INSERT returns nothing and the
    slot is not run again."""
    return stmt.on_conflict_do_update(
        index_elements=[_r.workflow_id, _r.producer_name, _r.scheduled_for],
        set_={
            "attempt": _r.attempt + 1,
            "task_id": stmt.excluded.task_id,
            "started_at": stmt.excluded.started_at,
            "status": stmt.excluded.status,
            "error": stmt.excluded.error,
            "finished_at": stmt.excluded.finished_at,
        },
        where=_r.status == RunStatus.RUNNING,
    )


# A pending trigger request becomes running (or skipped, if paused) only with its own token.
_START_TRIGGERED: Update = (
    update(producer_runs)
    .where(
        _r.workflow_id == bind("b_workflow_id", _r.workflow_id),
        _r.workflow_id
        == select(workflows.c.id)
        .where(workflows.c.name == bind("b_workflow_name", workflows.c.name))
        .scalar_subquery(),
        _r.producer_name == bind("b_producer_name", _r.producer_name),
        _r.scheduled_for == bind("b_scheduled_for", _r.scheduled_for),
        _r.trigger == "manual",
        _r.trigger_token == bind("b_trigger_token", _r.trigger_token),
        _r.status == RunStatus.PENDING,
    )
    .values(
        status=bind("b_start_status", _r.status),
        error=bind("b_start_error", _r.error),
        finished_at=bind("b_start_end", _r.finished_at),
        task_id=bind("b_task_id", _r.task_id),
        started_at=bind("b_started_at", _r.started_at),
    )
    .returning(*producer_runs.c)
)


FINISH_RUN: Update = (
    update(producer_runs)
    .where(_r.id == bind("b_run_id", _r.id))
    .values(
        status=bind("b_status", _r.status),
        finished_at=bind("b_finished_at", _r.finished_at),
        duration_ms=bind("b_duration_ms", _r.duration_ms),
        error=bind("b_error", _r.error),
        result=bind("b_result", _r.result),
    )
)

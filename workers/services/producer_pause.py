"""Pause and resume one producer of a workflow, with a note saying who and why.

Like the workflow-wide pause (`workers.services.lifecycle`), under the workflow's lock: a paused
producer's queued messages are recorded skipped (`paused`) by the worker, beat claims none of
its slots, and resuming moves a next run that passed meanwhile on to the next slot after now,
the slots passed over recorded `paused` in the slot ledger as one entry. Each pause or resume
is a history entry naming the producer, committed with it; it keeps the workflow's version.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import Connection, Engine

from models.change_store import DEFAULT_HISTORY_KEPT, ChangeAuthor, ChangeStore
from models.errors import LifecycleError, ProducerNotFoundError, WorkflowNotFoundError
from models.log_text import loggable
from models.records import JSONDict, ScheduleRecord, WorkflowRecord
from models.schedule_store import ProducerScheduleStore
from models.stored_schedules import schedule_from_row
from models.types import utc_now
from models.vocabulary import ChangeAction, WorkflowStatus
from models.workflow_store import WorkflowStore
from workers.services.lifecycle import UNKNOWN_AUTHOR, ChangeSummary, ProducerChanges
from workers.services.locks import WorkflowLocks

logger = logging.getLogger("drumline.lifecycle")


class ProducerPauses:
    def __init__(
        self,
        engine: Engine,
        locks: WorkflowLocks,
        *,
        now: Callable[[], datetime] = utc_now,
        history_kept: int = DEFAULT_HISTORY_KEPT,
    ) -> None:
        self.engine = engine
        self.locks = locks
        self.now = now
        self.history_kept = history_kept
        self.workflows = WorkflowStore(engine)
        self.schedules = ProducerScheduleStore(engine)
        self.history = ChangeStore(engine)

    def pause(self, name: str, producer: str, *, author: ChangeAuthor) -> ChangeSummary:
        """Pause one producer; pausing it again replaces who, when and why."""
        by, note = author.actor, author.note
        with self.locks.hold(name):
            workflow, row = self._require(name, producer)
            now = self.now()
            with self.engine.begin() as conn:
                self.schedules.set_paused(
                    workflow.id, True, producer_name=producer, by=by, note=note, now=now, conn=conn
                )
                was = WorkflowStatus.PAUSED if row.paused else WorkflowStatus.ACTIVE
                diff: JSONDict = {"status": {"old": was.value, "new": WorkflowStatus.PAUSED.value}}
                self._record(
                    workflow, producer, ChangeAction.PAUSE_PRODUCER, diff, author, now, conn
                )
        logger.info(
            "producer %s paused by %s: %s",
            loggable(f"{name}.{producer}"),
            loggable(by),
            loggable(note or "no note"),
        )
        return _summary(workflow, producer, WorkflowStatus.PAUSED, noop=False)

    def resume(
        self, name: str, producer: str, *, author: ChangeAuthor = UNKNOWN_AUTHOR
    ) -> ChangeSummary:
        """Resume one producer of an active workflow from its next slot after now."""
        with self.locks.hold(name):
            workflow, row = self._require(name, producer)
            if workflow.status == WorkflowStatus.PAUSED:
                raise LifecycleError(
                    f"workflow {name!r} is paused: resume the workflow (`drumline resume"
                    f" {name}`), which resumes all of its producers",
                    {"workflow": name, "producer": producer},
                )
            if not row.paused:
                return _summary(workflow, producer, WorkflowStatus.ACTIVE, noop=True)
            now = self.now()
            next_run = _next_slot(row, now)
            with self.engine.begin() as conn:
                # Moved first, while the row still says why it was paused (the ledger keeps it).
                moved = (
                    next_run is not None
                    and row.next_run_at is not None
                    and self.schedules.move_next_run(
                        row.id, read=row.next_run_at, to=next_run, now=now, conn=conn
                    )
                )
                self.schedules.set_paused(
                    workflow.id, False, producer_name=producer, now=now, conn=conn
                )
                diff = {
                    "status": {
                        "old": WorkflowStatus.PAUSED.value,
                        "new": WorkflowStatus.ACTIVE.value,
                    },
                    "rescheduled": [producer] if moved else [],
                }
                self._record(
                    workflow, producer, ChangeAction.RESUME_PRODUCER, diff, author, now, conn
                )
        logger.info("producer %s resumed", loggable(f"{name}.{producer}"))
        return _summary(workflow, producer, WorkflowStatus.ACTIVE, noop=False, moved=bool(moved))

    def _record(
        self,
        workflow: WorkflowRecord,
        producer: str,
        action: ChangeAction,
        diff: JSONDict,
        author: ChangeAuthor,
        now: datetime,
        conn: Connection,
    ) -> None:
        """The change's history entry, in its transaction, at the workflow's version."""
        self.history.record(
            workflow=workflow.name,
            version=workflow.version,
            producer=producer,
            action=action,
            definition=workflow.definition,
            diff=diff,
            author=author,
            now=now,
            keep=self.history_kept,
            conn=conn,
        )

    def _require(self, name: str, producer: str) -> tuple[WorkflowRecord, ScheduleRecord]:
        workflow = self.workflows.get(name)
        if workflow is None:
            raise WorkflowNotFoundError(f"workflow {name!r} does not exist", {"workflow": name})
        row = self.schedules.get(workflow.id, producer)
        if row is None:
            raise ProducerNotFoundError(
                f"workflow {name!r} has no producer {producer!r}",
                {"workflow": name, "producer": producer},
            )
        return workflow, row


def _next_slot(row: ScheduleRecord, now: datetime) -> datetime | None:
    """The next slot after now if the stored next run passed while paused, else None."""
    if row.next_run_at is None or row.next_run_at >= now:
        return None
    schedule = schedule_from_row(row.schedule_type, row.schedule_value, row.timezone)
    return schedule.next_after(now, anchor=row.next_run_at)


def _summary(
    workflow: WorkflowRecord,
    producer: str,
    status: WorkflowStatus,
    *,
    noop: bool,
    moved: bool = False,
) -> ChangeSummary:
    changes = ProducerChanges(unchanged=[producer]) if noop else ProducerChanges(changed=[producer])
    rescheduled = None if status == WorkflowStatus.PAUSED else ((producer,) if moved else ())
    return ChangeSummary(workflow.name, workflow.version, changes, noop, status, rescheduled)

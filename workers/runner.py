"""The worker's run path: take a slot, run its producer, commit the outcome once.

1. One transaction checks that the message's claim token still holds the slot and records the
   run row (unique per slot). A stale message, or a slot that already finished, runs nothing.
2. The producer runs under its time limit, outside any transaction.
3. One transaction finishes the run row and writes the schedule (next run, last status,
   failures, state) only `WHERE claim_token = :token`. If the claim was lost meanwhile
   (lease expired and re-sent, or the schedule was changed), the schedule is left alone and
   the run is marked `superseded`.
"""

from __future__ import annotations

import json
import logging
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from models.records import RunRecord, ScheduleRecord, SlotOutcome
from models.run_store import RunStore
from models.schedule_store import ProducerScheduleStore
from models.scheduled_runs import ScheduledRunStore
from models.schedules import schedule_from_row
from models.vocabulary import RunStatus, SkipReason, Trigger
from workers.registry import ProducerContext, ProducerResult, get_producer
from workers.time_limit import time_limit

logger = logging.getLogger("drumline.run")
MAX_ERROR_CHARS = 4000


@dataclass(frozen=True)
class Slot:
    """What a run_producer message names: one producer at one scheduled instant."""

    workflow_id: int
    workflow: str
    producer: str
    scheduled_for: datetime
    claim_token: str | None
    task_id: str | None

    @property
    def trigger(self) -> Trigger:
        return Trigger.SCHEDULE if self.claim_token else Trigger.MANUAL

    @property
    def label(self) -> str:
        return f"{self.workflow}.{self.producer}@{self.scheduled_for.isoformat()}"


@dataclass(frozen=True)
class Execution:
    status: RunStatus
    result: Any
    state: dict[str, Any]
    error: str | None
    duration_ms: float


Clock = Callable[[], datetime]


class SlotRunner:
    """Runs slots against one database. Cheap to build: `run_producer` makes one per message
    around its process's shared engine."""

    def __init__(
        self,
        engine: Engine,
        *,
        lease: timedelta,
        max_timeout: timedelta,
        default_timeout: timedelta,
        clock: Clock,
    ) -> None:
        self.engine = engine
        self.lease = lease
        self.schedules = ProducerScheduleStore(engine)
        self.runs = RunStore(engine)
        self.scheduled = ScheduledRunStore(engine)
        self.max_timeout = max_timeout
        self.default_timeout = default_timeout
        self.clock = clock

    def run(self, slot: Slot) -> dict[str, Any]:
        """Run one slot; returns a summary for the task result (and Flower)."""
        started = self._start(slot)
        if isinstance(started, SkipReason):
            logger.info("%s skipped: %s: not run", slot.label, started)
            return {"slot": slot.label, "status": f"skipped: {started}"}
        schedule, run = started
        execution = self._execute(slot, schedule)
        status = self._commit(slot, schedule, run, execution)
        logger.info(
            "%s %s in %.1f ms (workflow=%s producer=%s attempt=%d)%s",
            slot.label,
            status,
            execution.duration_ms,
            slot.workflow,
            slot.producer,
            run.attempt,
            f": {execution.error.splitlines()[-1]}" if execution.error else "",
        )
        return {
            "slot": slot.label,
            "status": status,
            "duration_ms": round(execution.duration_ms, 3),
            "result": execution.result,
        }

    def _start(self, slot: Slot) -> tuple[ScheduleRecord, RunRecord] | SkipReason:
        """Check the claim and record the run row, in one atomic step."""
        now = self.clock()
        if slot.claim_token is None:
            return self._start_manual(slot, now)
        started = self.scheduled.start(
            workflow_id=slot.workflow_id,
            producer_name=slot.producer,
            scheduled_for=slot.scheduled_for,
            claim_token=slot.claim_token,
            task_id=slot.task_id,
            now=now,
            lease=self.lease,
        )
        if started is None:
            return SkipReason.STALE_MESSAGE
        if started.run is None:
            self._advance_finished_slot(slot.claim_token, started.schedule, slot, now)
            return SkipReason.ALREADY_FINISHED
        return started.schedule, started.run

    def _start_manual(
        self, slot: Slot, now: datetime
    ) -> tuple[ScheduleRecord, RunRecord] | SkipReason:
        with self.engine.begin() as conn:
            schedule = self.schedules.get(slot.workflow_id, slot.producer, conn=conn)
            if schedule is None:
                return SkipReason.PRODUCER_GONE
            run = self.runs.begin(
                workflow_id=slot.workflow_id,
                producer_name=slot.producer,
                scheduled_for=slot.scheduled_for,
                trigger=slot.trigger,
                task_id=slot.task_id,
                now=now,
                conn=conn,
            )
        if run is None:
            return SkipReason.ALREADY_FINISHED
        return schedule, run

    def _advance_finished_slot(
        self, claim_token: str, schedule: ScheduleRecord, slot: Slot, now: datetime
    ) -> None:
        """A slot that finished but still holds a claim moves on instead of being retried.

        Its own step, after the claim was renewed by this run: the token still holds it.
        """
        outcome = SlotOutcome(
            status=schedule.last_status or RunStatus.SKIPPED,
            ran_at=schedule.last_run_at or slot.scheduled_for,
            next_run_at=self._next_run(schedule, slot.scheduled_for, now),
            state=schedule.state,
        )
        self.schedules.commit_slot(schedule.id, claim_token, outcome, now=now)

    def _execute(self, slot: Slot, schedule: ScheduleRecord) -> Execution:
        timeout = self._timeout(schedule)
        context = ProducerContext(
            workflow=slot.workflow,
            producer=slot.producer,
            scheduled_for=slot.scheduled_for,
            trigger=slot.trigger,
            params=schedule.params,
            state=dict(schedule.state),
            logger=logging.getLogger(f"drumline.producer.{slot.workflow}.{slot.producer}"),
        )
        began = time.perf_counter()
        try:
            function = get_producer(schedule.run)
            with time_limit(timeout.total_seconds()):
                returned = function(context)
            result, state = _unpack(returned, schedule.state)
            json.dumps([result, state])
        except Exception as exc:  # any producer failure is recorded, not raised
            return Execution(
                status=RunStatus.FAILED,
                result=None,
                state=schedule.state,
                error=_error_text(exc),
                duration_ms=(time.perf_counter() - began) * 1000,
            )
        return Execution(
            status=RunStatus.SUCCEEDED,
            result=result,
            state=state,
            error=None,
            duration_ms=(time.perf_counter() - began) * 1000,
        )

    def _commit(
        self, slot: Slot, schedule: ScheduleRecord, run: RunRecord, execution: Execution
    ) -> str:
        """Finish the run row and write the schedule back, in one atomic step."""
        now = self.clock()
        if slot.claim_token is None:
            return self._commit_manual(schedule, run, execution, now)
        return self.scheduled.finish(
            schedule_id=schedule.id,
            claim_token=slot.claim_token,
            outcome=SlotOutcome(
                status=execution.status,
                ran_at=run.started_at,
                next_run_at=self._next_run(schedule, slot.scheduled_for, now),
                state=execution.state,
            ),
            run_id=run.id,
            duration_ms=execution.duration_ms,
            error=execution.error,
            result=execution.result,
            now=now,
        )

    def _commit_manual(
        self, schedule: ScheduleRecord, run: RunRecord, execution: Execution, now: datetime
    ) -> str:
        """A triggered run leaves the schedule's next run and claim alone."""
        outcome = SlotOutcome(
            status=execution.status, ran_at=run.started_at, next_run_at=None, state=execution.state
        )
        with self.engine.begin() as conn:
            self.schedules.record_manual_run(schedule.id, outcome, now=now, conn=conn)
            self.runs.finish(
                run.id,
                status=execution.status,
                finished_at=now,
                duration_ms=execution.duration_ms,
                error=execution.error,
                result=execution.result,
                conn=conn,
            )
        return execution.status

    def _next_run(
        self, schedule: ScheduleRecord, scheduled_for: datetime, now: datetime
    ) -> datetime | None:
        """The next slot after max(scheduled_for, now), on the producer's grid."""
        compiled = schedule_from_row(
            schedule.schedule_type, schedule.schedule_value, schedule.timezone
        )
        return compiled.next_after(max(scheduled_for, now), anchor=scheduled_for)

    def _timeout(self, schedule: ScheduleRecord) -> timedelta:
        if schedule.timeout_seconds is None:
            return self.default_timeout
        asked = timedelta(seconds=schedule.timeout_seconds)
        if asked > self.max_timeout:
            logger.warning(
                "producer %s asks for a %gs time limit; capped at %gs (80%% of the lease)",
                schedule.producer_name,
                asked.total_seconds(),
                self.max_timeout.total_seconds(),
            )
            return self.max_timeout
        return asked


def _unpack(returned: Any, previous_state: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """A producer returns a ProducerResult, or a bare result (state unchanged), or None."""
    if not isinstance(returned, ProducerResult):
        return returned, previous_state
    if returned.state is None:
        return returned.result, previous_state
    if not isinstance(returned.state, dict):
        # The next run hands the state back as a mapping: anything else could never run again.
        kind = type(returned.state).__name__
        raise TypeError(f"ProducerResult.state must be a dict (a JSON object), not {kind}")
    return returned.result, returned.state


def _error_text(exc: BaseException) -> str:
    text = "".join(traceback.format_exception(exc))
    return text[-MAX_ERROR_CHARS:]

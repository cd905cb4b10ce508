"""The worker's run path: take a slot, run its producer, commit the outcome once.

A message is trusted only as far as the database confirms it. A scheduled run carries the
claim token beat wrote; a manual run carries the trigger token `drumline trigger` wrote into a
pending run row. A message with neither (or both) is refused and writes nothing.

1. One atomic step checks the message against the database and records the run row (unique
   per slot): the claim token must hold the claim on exactly this slot (the row's next run) of
   this workflow and producer, or the trigger token must match a pending request for it. A
   stale, forged or replayed message, or a slot that already finished, runs nothing. A paused
   producer's slot is recorded `skipped` (reason `paused`) in the same step, and not run.
2. The producer runs under its time limit, outside any transaction. A run that outlived its
   limit is a failure whatever it returned; its result and state must be plain JSON within
   their bounds, or the run fails and nothing of them is stored.
3. One transaction finishes the run row and writes the schedule (next run, last status,
   failures, state) only `WHERE claim_token = :token`. If the claim was lost meanwhile
   (lease expired and re-sent, or the schedule was changed), the schedule is left alone and
   the run is marked `superseded`.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property, lru_cache
from typing import Any

from sqlalchemy import Engine

from models.catchup import latest_due
from models.change_store import DEFAULT_HISTORY_KEPT
from models.log_text import loggable
from models.plain_json import JsonBounds, PlainJsonError, check_plain_json
from models.records import RunRecord, ScheduleRecord, SlotOutcome
from models.run_path import RunPath
from models.schedules import Schedule, format_interval
from models.slot_ledger import LedgerEntry, slots_between
from models.slot_ledger_store import Ledger
from models.slot_policy import SlotPolicy
from models.stored_schedules import schedule_from_row
from models.vocabulary import (
    CatchupPolicy,
    OverlapPolicy,
    RunStatus,
    SkipReason,
    SlotFate,
    Trigger,
)
from workers.registry import ProducerContext, ProducerResult, get_producer
from workers.services.run_metrics import NoRunMetrics, RunRecorder, reason_label
from workers.services.time_limit import ProducerTimeoutError, TimeLimit

logger = logging.getLogger("drumline.run")
MAX_ERROR_CHARS = 4000
# A producer that catches its time-limit exception gets it again this often (at most 2% of
# the lease, so several tries fit between the longest limit, 80%, and Celery's hard one, 90%).
MAX_AGAIN_EVERY_S = 1.0


@dataclass(frozen=True)
class Slot:
    """What a run_producer message names: one producer at one scheduled instant."""

    workflow_id: int
    workflow: str
    producer: str
    scheduled_for: datetime
    claim_token: str | None
    task_id: str | None
    trigger_token: str | None = None

    @property
    def trigger(self) -> Trigger:
        return Trigger.SCHEDULE if self.claim_token is not None else Trigger.MANUAL

    @cached_property
    def label(self) -> str:
        """The slot for a log line: escaped and bounded, since the names come from a message.
        Cached: a run logs it and returns it, and escaping costs as much as a metric update."""
        return loggable(f"{self.workflow}.{self.producer}@{self.scheduled_for.isoformat()}")

    def refusal(self) -> str | None:
        """Why the message cannot name a run at all, or None."""
        if self.claim_token is None and self.trigger_token is None:
            return "no claim_token or trigger_token: it matches no claimed slot or trigger request"
        if self.claim_token is not None and self.trigger_token is not None:
            return "both claim_token and trigger_token: a run is scheduled or triggered, not both"
        return None


@dataclass(frozen=True)
class Execution:
    status: str
    result: Any
    state: dict[str, Any]
    error: str | None
    duration_ms: float
    timed_out: bool = False

    def fate(self) -> SlotFate:
        """The slot ledger's outcome: a timeout is told apart from another failure."""
        if self.status == RunStatus.SUCCEEDED:
            return SlotFate.SUCCEEDED
        return SlotFate.TIMED_OUT if self.timed_out else SlotFate.FAILED


Clock = Callable[[], datetime]


class SlotRunner:
    """Runs slots against one database. Keeps nothing about any slot or schedule between runs
    (each run reads its slot under its token), so `run_producer` keeps one per process."""

    def __init__(
        self,
        engine: Engine,
        *,
        lease: timedelta,
        max_timeout: timedelta,
        default_timeout: timedelta,
        clock: Clock,
        result_bounds: JsonBounds,
        state_bounds: JsonBounds,
        metrics: RunRecorder | None = None,
        history_kept: int = DEFAULT_HISTORY_KEPT,
    ) -> None:
        self.metrics = metrics or NoRunMetrics()
        self.lease = lease
        self.run_path = RunPath(engine, history_kept=history_kept)
        self.max_timeout = max_timeout
        self.default_timeout = default_timeout
        self.clock = clock
        self.result_bounds = result_bounds
        self.state_bounds = state_bounds
        self.again_every = min(MAX_AGAIN_EVERY_S, lease.total_seconds() * 0.02)

    def run(self, slot: Slot) -> dict[str, Any]:
        """Run one slot; returns a summary for the task result (and Flower)."""
        refusal = slot.refusal()
        if refusal is not None:
            logger.warning("%s refused (task %s): %s", slot.label, loggable(slot.task_id), refusal)
            self.metrics.dropped("refused")
            return {"slot": slot.label, "status": f"refused: {refusal}"}
        started = self._start(slot)
        if isinstance(started, SkipReason):
            self._count_skip(slot, started)
            logger.info("%s skipped: %s: not run", slot.label, started)
            return {"slot": slot.label, "status": f"skipped: {started}"}
        schedule, run = started
        if slot.claim_token is not None:
            self.metrics.started(slot.workflow, slot.producer, slot.scheduled_for, run.started_at)
        policy = SlotPolicy.from_json(schedule.policy)
        late = run.started_at - slot.scheduled_for
        deadline = policy.start_deadline
        if slot.claim_token is not None and deadline is not None and late > deadline:
            status = self._miss(slot, schedule, run, policy, late)
            logger.info("%s %s: missed its start deadline by %s", slot.label, status, late)
            return {"slot": slot.label, "status": status}
        if slot.claim_token is not None and policy.overlap == OverlapPolicy.ALLOW:
            return self._run_alongside(slot, schedule, run, policy)
        execution = self._execute(slot, schedule)
        status = self._commit(slot, schedule, run, execution, policy)
        self._count_finished(slot, run, execution, status)
        logger.info(
            "%s %s in %.1f ms (trigger=%s attempt=%d)%s",
            slot.label,
            status,
            execution.duration_ms,
            slot.trigger,
            run.attempt,
            f": {loggable(execution.error.splitlines()[-1])}" if execution.error else "",
        )
        return {
            "slot": slot.label,
            "status": status,
            "duration_ms": round(execution.duration_ms, 3),
            "result": execution.result,
        }

    def _count_skip(self, slot: Slot, reason: SkipReason) -> None:
        """A paused slot is a run row (outcome skipped, as the database has it); any other
        skip wrote nothing and is counted by reason only (its names are unconfirmed)."""
        if reason == SkipReason.PAUSED:
            self.metrics.finished(
                slot.workflow,
                slot.producer,
                trigger=slot.trigger,
                outcome=RunStatus.SKIPPED,
                seconds=None,
                attempt=1,
            )
        else:
            self.metrics.dropped(reason_label(reason))

    def _start(self, slot: Slot) -> tuple[ScheduleRecord, RunRecord] | SkipReason:
        """Check the message against the database and record the run row, in one atomic step."""
        now = self.clock()
        if slot.claim_token is None:
            return self._start_triggered(slot, now)
        started = self.run_path.start_scheduled(
            workflow_id=slot.workflow_id,
            workflow_name=slot.workflow,
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
            if not started.schedule.paused:
                self._advance_finished_slot(slot.claim_token, started.schedule, slot, now)
            return SkipReason.ALREADY_FINISHED
        if started.run.status == RunStatus.SKIPPED:
            self._record_paused(started.schedule, slot, now)
            return SkipReason.PAUSED
        return started.schedule, started.run

    def _start_triggered(
        self, slot: Slot, now: datetime
    ) -> tuple[ScheduleRecord, RunRecord] | SkipReason:
        """Start the trigger request the message names; a paused or deleted producer's request
        is finished as skipped instead."""
        assert slot.trigger_token is not None  # refused before, see Slot.refusal
        return self.run_path.start_triggered(
            workflow_id=slot.workflow_id,
            workflow_name=slot.workflow,
            producer_name=slot.producer,
            scheduled_for=slot.scheduled_for,
            trigger_token=slot.trigger_token,
            task_id=slot.task_id,
            now=now,
        )

    def _record_paused(self, schedule: ScheduleRecord, slot: Slot, now: datetime) -> None:
        """A paused producer's slot gets its ledger entry (resume may widen it to a range)."""
        who = schedule.paused_by or "pause"
        entry = LedgerEntry(
            slot=slot.scheduled_for,
            outcome=SlotFate.PAUSED,
            reason=f"the producer was paused ({who}: {schedule.pause_note or 'no note'})",
            policy="paused",
        )
        ledger = Ledger(schedule.workflow_id, schedule.producer_name, (entry,))
        self.run_path.record_outcomes(ledger, now=now)

    def _advance_finished_slot(
        self, claim_token: str, schedule: ScheduleRecord, slot: Slot, now: datetime
    ) -> None:
        """A slot that finished but still holds a claim moves on instead of being retried.

        Its own step, after the claim was renewed by this run: the token still holds it.
        """
        policy = SlotPolicy.from_json(schedule.policy)
        compiled = _compiled(schedule)
        next_run = _next_run(compiled, policy, slot.scheduled_for, now, now)
        outcome = SlotOutcome(
            status=schedule.last_status or RunStatus.SKIPPED,
            ran_at=schedule.last_run_at or slot.scheduled_for,
            next_run_at=next_run,
            state=schedule.state,
        )
        passed = slots_between(
            compiled,
            slot.scheduled_for,
            next_run,
            started_at=now,
            overlap=policy.overlap,
        )
        ledger = Ledger(schedule.workflow_id, schedule.producer_name, tuple(passed))
        self.run_path.commit_slot(schedule.id, claim_token, outcome, now=now, ledger=ledger)

    def _execute(self, slot: Slot, schedule: ScheduleRecord) -> Execution:
        limit = self._timeout(schedule).total_seconds()
        context = ProducerContext(
            workflow=slot.workflow,
            producer=slot.producer,
            scheduled_for=slot.scheduled_for,
            trigger=slot.trigger,
            params=schedule.params,
            state=dict(schedule.state),
            logger=_producer_logger(slot.workflow, slot.producer),
        )
        began = time.perf_counter()
        try:
            function = get_producer(schedule.run)
            with TimeLimit(limit, again_every=self.again_every):
                returned = function(context)
        except Exception as exc:  # any producer failure is recorded, not raised
            elapsed = time.perf_counter() - began
            error = _error_text(exc)
            timed_out = elapsed > limit or isinstance(exc, ProducerTimeoutError)
            if elapsed > limit and not isinstance(exc, ProducerTimeoutError):
                error += f"\n{_timed_out(limit, elapsed, 'raised')}"
            return self._failed(schedule, error, began, timed_out=timed_out)
        elapsed = time.perf_counter() - began
        if elapsed > limit:
            # It caught the time limit (perhaps more than once) and returned: not a success.
            error = _timed_out(limit, elapsed, "returned")
            return self._failed(schedule, error, began, timed_out=True)
        try:
            result, state = _unpack(returned, schedule.state)
            check_plain_json(result, self.result_bounds, path="result")
            check_plain_json(state, self.state_bounds, path="state")
        except (TypeError, PlainJsonError) as exc:
            error = f"{type(exc).__name__}: the producer's output was not stored: {exc}"
            return self._failed(schedule, error, began)
        return Execution(
            status=RunStatus.SUCCEEDED,
            result=result,
            state=state,
            error=None,
            duration_ms=(time.perf_counter() - began) * 1000,
        )

    @staticmethod
    def _failed(
        schedule: ScheduleRecord, error: str, began: float, *, timed_out: bool = False
    ) -> Execution:
        """A failed run keeps no result and leaves the state as it was."""
        return Execution(
            status=RunStatus.FAILED,
            result=None,
            state=schedule.state,
            error=error,
            duration_ms=(time.perf_counter() - began) * 1000,
            timed_out=timed_out,
        )

    def _run_alongside(
        self, slot: Slot, schedule: ScheduleRecord, run: RunRecord, policy: SlotPolicy
    ) -> dict[str, Any]:
        """`overlap: allow`: move the schedule on as the run starts, so that the next slots
        fall due while it runs (up to `max_concurrent` runs at once), then run and record it."""
        assert slot.claim_token is not None
        now = self.clock()
        compiled = _compiled(schedule)
        next_run = compiled.next_after(max(slot.scheduled_for, now), anchor=slot.scheduled_for)
        passed = slots_between(
            compiled, slot.scheduled_for, next_run, started_at=now, overlap=policy.overlap
        )
        busy = LedgerEntry(
            slot=slot.scheduled_for,
            outcome=SlotFate.SKIPPED_OVERLAP,
            reason=f"max_concurrent ({policy.max_concurrent}) runs were already running",
            policy=f"overlap=allow, max_concurrent={policy.max_concurrent}",
        )
        started = self.run_path.hand_off(
            schedule=schedule,
            claim_token=slot.claim_token,
            run=run,
            next_run_at=next_run,
            max_concurrent=policy.max_concurrent,
            lease=self.lease,
            ledger=Ledger(schedule.workflow_id, schedule.producer_name, tuple(passed)),
            busy=Ledger(schedule.workflow_id, schedule.producer_name, (busy, *passed)),
            now=now,
        )
        if started != RunStatus.RUNNING:
            logger.info("%s %s: not run (overlap=allow)", slot.label, started)
            return {"slot": slot.label, "status": str(started)}
        execution = self._execute(slot, schedule)
        now = self.clock()
        status = self.run_path.finish_handed_off(
            schedule_id=schedule.id,
            outcome=SlotOutcome(
                status=execution.status,
                ran_at=run.started_at,
                next_run_at=None,
                state=execution.state,
                pause_after_failures=policy.pause_after_failures,
                pause_note=_pause_note(policy, execution),
            ),
            run=run,
            duration_ms=execution.duration_ms,
            error=execution.error,
            result=execution.result,
            ledger=self._ledger(slot, schedule, compiled, policy, run, execution, None, now),
            now=now,
        )
        self._count_finished(slot, run, execution, status)
        logger.info(
            "%s %s in %.1f ms (overlap=allow attempt=%d)",
            slot.label,
            status,
            execution.duration_ms,
            run.attempt,
        )
        return {"slot": slot.label, "status": status, "duration_ms": execution.duration_ms}

    def _count_finished(
        self, slot: Slot, run: RunRecord, execution: Execution, status: str
    ) -> None:
        self.metrics.finished(
            slot.workflow,
            slot.producer,
            trigger=slot.trigger,
            outcome=status,
            seconds=execution.duration_ms / 1000,
            attempt=run.attempt,
        )

    def _miss(
        self,
        slot: Slot,
        schedule: ScheduleRecord,
        run: RunRecord,
        policy: SlotPolicy,
        late: timedelta,
    ) -> str:
        """A slot that could not start within its start deadline is recorded missed, not run."""
        assert slot.claim_token is not None and policy.start_deadline is not None
        now = self.clock()
        compiled = _compiled(schedule)
        next_run = _next_run(compiled, policy, slot.scheduled_for, run.started_at, now)
        deadline = format_interval(policy.start_deadline)
        reason = f"missed: could not start within its start deadline ({deadline}); {late} late"
        own = LedgerEntry(
            slot=slot.scheduled_for,
            outcome=SlotFate.MISSED,
            reason=reason,
            policy=f"start_deadline={deadline}",
            attempts=run.attempt - 1,
        )
        passed = slots_between(
            compiled,
            slot.scheduled_for,
            next_run,
            started_at=run.started_at,
            overlap=policy.overlap,
        )
        return self.run_path.miss_scheduled(
            schedule_id=schedule.id,
            claim_token=slot.claim_token,
            outcome=SlotOutcome(
                status=RunStatus.SKIPPED,
                ran_at=schedule.last_run_at or slot.scheduled_for,
                next_run_at=next_run,
                state=schedule.state,
            ),
            run=run,
            reason=reason,
            ledger=Ledger(schedule.workflow_id, schedule.producer_name, (own, *passed)),
            now=now,
        )

    def _commit(
        self,
        slot: Slot,
        schedule: ScheduleRecord,
        run: RunRecord,
        execution: Execution,
        policy: SlotPolicy,
    ) -> str:
        """Finish the run row and write the schedule back, in one atomic step; or keep a failed
        slot for another attempt (`retries:`)."""
        now = self.clock()
        if slot.claim_token is None:
            return self._commit_triggered(schedule, run, execution, now)
        compiled = _compiled(schedule)
        retry_at = _retry_at(compiled, policy, slot.scheduled_for, run.attempt, execution, now)
        if retry_at is not None:
            return self.run_path.retry_later(
                schedule_id=schedule.id,
                claim_token=slot.claim_token,
                run=run,
                retry_at=retry_at,
                duration_ms=execution.duration_ms,
                error=execution.error,
                ledger=self._ledger(slot, schedule, compiled, policy, run, execution, None, now),
                now=now,
            )
        next_run = _next_run(compiled, policy, slot.scheduled_for, run.started_at, now)
        return self.run_path.finish_scheduled(
            schedule_id=schedule.id,
            claim_token=slot.claim_token,
            outcome=SlotOutcome(
                status=execution.status,
                ran_at=run.started_at,
                next_run_at=next_run,
                state=execution.state,
                pause_after_failures=policy.pause_after_failures,
                pause_note=_pause_note(policy, execution),
            ),
            ledger=self._ledger(slot, schedule, compiled, policy, run, execution, next_run, now),
            run=run,
            duration_ms=execution.duration_ms,
            error=execution.error,
            result=execution.result,
            now=now,
        )

    def _ledger(
        self,
        slot: Slot,
        schedule: ScheduleRecord,
        compiled: Schedule,
        policy: SlotPolicy,
        run: RunRecord,
        execution: Execution,
        next_run: datetime | None,
        now: datetime,
    ) -> Ledger:
        """The run's own slot, then the slots its commit passes over (see `slots_between`)."""
        error = execution.error.splitlines()[-1] if execution.error else None
        own = LedgerEntry(
            slot=slot.scheduled_for,
            outcome=execution.fate(),
            reason=error or f"ran in {execution.duration_ms:.1f} ms",
            policy=_run_policy(self._timeout(schedule), policy),
            attempts=run.attempt,
            started_at=run.started_at,
            finished_at=now,
        )
        passed = slots_between(
            compiled,
            slot.scheduled_for,
            next_run,
            started_at=run.started_at,
            overlap=policy.overlap,
        )
        return Ledger(schedule.workflow_id, schedule.producer_name, (own, *passed))

    def _commit_triggered(
        self, schedule: ScheduleRecord, run: RunRecord, execution: Execution, now: datetime
    ) -> str:
        """A triggered run leaves the schedule's next run and claim alone."""
        outcome = SlotOutcome(
            status=execution.status, ran_at=run.started_at, next_run_at=None, state=execution.state
        )
        return self.run_path.finish_triggered(
            schedule_id=schedule.id,
            outcome=outcome,
            run=run,
            duration_ms=execution.duration_ms,
            error=execution.error,
            result=execution.result,
            now=now,
        )

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


def _next_run(
    compiled: Schedule,
    policy: SlotPolicy,
    scheduled_for: datetime,
    started_at: datetime,
    now: datetime,
) -> datetime | None:
    """The slot the producer runs next, on its grid (None for a manual-only producer: its
    ManualSchedule never fires): the first slot after max(scheduled_for, now), except
    that `catchup: all` runs a slot that fell due before this run started, and
    `overlap: buffer_one` the latest slot that fell due while it ran."""
    following = compiled.next_after(scheduled_for, anchor=scheduled_for)
    if following is None:
        return None
    if policy.catchup == CatchupPolicy.ALL and following <= started_at:
        return following
    during = compiled.next_after(max(started_at, scheduled_for), anchor=scheduled_for)
    if policy.overlap == OverlapPolicy.BUFFER_ONE and during is not None and during <= now:
        return latest_due(compiled, during, now)
    return compiled.next_after(max(scheduled_for, now), anchor=scheduled_for)


def _run_policy(timeout: timedelta, policy: SlotPolicy) -> str:
    """What decided a run's outcome: its time limit, and its retries if it has any."""
    text = f"timeout={timeout.total_seconds():g}s"
    if policy.retries.max:
        text += f", retries.max={policy.retries.max}"
    return text


def _retry_at(
    schedule: Schedule,
    policy: SlotPolicy,
    scheduled_for: datetime,
    attempt: int,
    execution: Execution,
    now: datetime,
) -> datetime | None:
    """When a failed attempt is tried again, or None: no retries left, or the retry would not
    start before the next slot (so it never overlaps that slot's run), its start deadline or
    its catch-up window."""
    if execution.status != RunStatus.FAILED or attempt > policy.retries.max:
        return None
    retry_at = now + policy.retries.delay(attempt)
    limits = [schedule.next_after(scheduled_for, anchor=scheduled_for)]
    limits += [
        scheduled_for + limit
        for limit in (policy.start_deadline, policy.catchup_window)
        if limit is not None
    ]
    if any(limit is not None and retry_at >= limit for limit in limits):
        return None
    return retry_at


def _pause_note(policy: SlotPolicy, execution: Execution) -> str | None:
    """Why auto-pause paused the producer, should this failure reach `pause_after_failures`."""
    if policy.pause_after_failures is None or execution.error is None:
        return None
    last = loggable(execution.error.strip().splitlines()[-1], 300)
    count = policy.pause_after_failures
    return f"{count} consecutive failed slots (pause_after_failures: {count}); last: {last}"


@lru_cache(maxsize=4096)
def _producer_logger(workflow: str, producer: str) -> logging.Logger:
    """The producer's logger, looked up once: `logging.getLogger` takes the module's lock."""
    return logging.getLogger(f"drumline.producer.{workflow}.{producer}")


def _compiled(schedule: ScheduleRecord) -> Schedule:
    return schedule_from_row(schedule.schedule_type, schedule.schedule_value, schedule.timezone)


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


def _timed_out(limit: float, elapsed: float, then: str) -> str:
    """The error of a run that outlived its limit: it caught the exception, then `then`."""
    return (
        f"ProducerTimeoutError: timed out after {limit:g}s (the producer caught its time limit"
        f" and {then} after {elapsed:.3g}s)"
    )


def _error_text(exc: BaseException) -> str:
    text = "".join(traceback.format_exception(exc))
    return text[-MAX_ERROR_CHARS:]

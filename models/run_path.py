"""The run path's SQL: how a worker starts and finishes a run, scheduled or triggered.

A scheduled run starts by renewing its claim and recording the run row; it finishes by writing
the schedule back under the claim token and finishing the run row. On PostgreSQL each of these
steps is one statement (a data-modifying CTE) sent in autocommit: one round trip instead of
four (BEGIN, two statements, COMMIT), which is most of what a short run costs the worker.
SQLite cannot modify data inside a CTE, so there each step is two statements in one
transaction. A triggered (manual) run starts the pending request `drumline trigger` recorded,
and finishes without touching the schedule's next run or claim.

Every statement here is built once (see `models.transactions.bind`), private to this module,
and sits next to the function that builds its parameters. Those of the scheduled start and
finish, which every run sends, are compiled once per engine and sent on the driver's cursor
(`models.driver_statement`): SQLAlchemy's execution around them cost more than the driver's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import (
    Boolean,
    Connection,
    Engine,
    Integer,
    Update,
    bindparam,
    case,
    exists,
    func,
    literal,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.dialects import postgresql

from models.change_store import AUTO_PAUSE_ACTOR, DEFAULT_HISTORY_KEPT, record_auto_pause
from models.driver_statement import DriverStatement
from models.held_connection import HeldConnection
from models.records import RunRecord, ScheduleRecord, SlotOutcome
from models.run_store import run_record
from models.schedule_store import schedule_record
from models.slot_ledger import LedgerEntry
from models.slot_ledger_store import (
    SUPERSEDED_REASON,
    Ledger,
    record_ledger,
    record_statement,
)
from models.tables import producer_runs, producer_schedules, workflows
from models.transactions import bind, insert_for, transaction
from models.vocabulary import RunStatus, SkipReason, SlotFate, Trigger

_r = producer_runs.c
_s = producer_schedules.c
WORKER_DIED = "its worker died: no outcome within a lease of its start"
_RUN_PREFIX = "run__"  # the run row's columns, beside the schedule row's
_SCHEDULE_KEYS = tuple(column.name for column in producer_schedules.c)
_RUN_KEYS = tuple(column.name for column in producer_runs.c)


@dataclass(frozen=True)
class StartedSlot:
    """A slot whose claim this run now holds. `run` is None if the slot already finished."""

    schedule: ScheduleRecord
    run: RunRecord | None


class RunPath:
    """Start and finish runs; a stale claim token or trigger token writes nothing."""

    def __init__(self, engine: Engine, *, history_kept: int = DEFAULT_HISTORY_KEPT) -> None:
        self.engine = engine
        self._single_statement = engine.dialect.name == "postgresql"
        # An auto-pause's history entry keeps the newest `history_kept` of its workflow's.
        self.history_kept = history_kept
        # The two steps every scheduled run takes use a connection kept between runs; the
        # rarer steps check one out of the pool each time.
        self._held = HeldConnection(engine, autocommit=self._single_statement)
        # The statements every scheduled run sends, run on the driver's cursor (compiled once).
        self._drivers: dict[int, DriverStatement] = {}

    def _driver(self, statement: Any) -> DriverStatement:
        """`statement` compiled for this engine; each is a module constant or cached, so its
        identity names it."""
        driver = self._drivers.get(id(statement))
        if driver is None:
            driver = self._drivers[id(statement)] = DriverStatement(statement, self.engine.dialect)
        return driver

    # --- scheduled runs ------------------------------------------------------------------------

    def start_scheduled(
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
        claim = _take_claim_params(
            workflow_id,
            producer_name,
            claim_token,
            workflow_name=workflow_name,
            scheduled_for=scheduled_for,
            now=now,
            lease=lease,
        )
        begin = _begin_params(
            workflow_id, producer_name, scheduled_for, Trigger.SCHEDULE, task_id, now=now
        )
        if self._single_statement:
            start = self._driver(_START_PG)
            with self._held() as conn:
                row = start.first(conn, claim | begin)
            return None if row is None else _started_slot(row)
        take_claim = self._driver(_TAKE_CLAIM)
        begin_run = self._driver(_begin_statement("sqlite"))
        with self._held() as conn:
            claimed = take_claim.first(conn, claim)
            if claimed is None:
                return None
            schedule = ScheduleRecord(**dict(zip(take_claim.keys, claimed, strict=True)))
            skipped = SkipReason.PAUSED if schedule.paused else None
            began = begin_run.first(conn, begin | _start_outcome_params(skipped, now))
        run = None if began is None else _run_record(begin_run.keys, began)
        return StartedSlot(schedule, run)

    def finish_scheduled(
        self,
        *,
        schedule_id: int,
        claim_token: str,
        outcome: SlotOutcome,
        run: RunRecord,
        duration_ms: float,
        error: str | None,
        result: Any,
        ledger: Ledger,
        now: datetime,
    ) -> str:
        """Write the outcome back, finish the run row and record the ledger entries (the run's
        own slot first); returns the run's final status: the outcome's, or `superseded` if the
        claim was lost, the schedule left alone and only the own slot recorded, as superseded.
        A failure that may auto-pause the producer takes the transaction, to record the pause
        in the history with it."""
        commit = _commit_slot_params(schedule_id, claim_token, outcome, now=now)
        if self._single_statement and not _may_auto_pause(outcome):
            params = (
                commit
                | _finish_params(run, outcome.status, now, duration_ms, error, result)
                | ledger.params(now)
            )
            with self._held() as conn:
                row = self._driver(_finish_pg(len(ledger.entries))).first(conn, params)
            # No row: a later attempt has taken the slot over; its run row is not this one's.
            return RunStatus.SUPERSEDED if row is None else str(row[0])
        if self._single_statement:
            # The kept connection is in autocommit: this step needs a transaction.
            return self._finish_in_transaction(
                schedule_id, claim_token, outcome, run, duration_ms, error, result, ledger, now
            )
        with self._held() as conn:
            held = self._driver(_COMMIT_SLOT).rowcount(conn, commit) == 1
            status = outcome.status if held else RunStatus.SUPERSEDED
            finish = _finish_params(run, status, now, duration_ms, error, result)
            self._driver(_FINISH_RUN).rowcount(conn, finish)
            if ledger.entries:
                record = self._driver(record_statement("sqlite", len(ledger.entries)))
                record.rowcount(conn, ledger.params(now) | {"b_held": held})
            if held and _may_auto_pause(outcome):
                record_auto_pause(conn, schedule_id, now=now, keep=self.history_kept)
        return status

    def _finish_in_transaction(
        self,
        schedule_id: int,
        claim_token: str,
        outcome: SlotOutcome,
        run: RunRecord,
        duration_ms: float,
        error: str | None,
        result: Any,
        ledger: Ledger,
        now: datetime,
    ) -> str:
        """`finish_scheduled` of a failure that may auto-pause the producer, in a transaction
        that also records the pause in the history."""
        with self.engine.begin() as conn:
            held = self.commit_slot(schedule_id, claim_token, outcome, now=now, conn=conn)
            status = outcome.status if held else RunStatus.SUPERSEDED
            self.finish_run(
                run,
                status=status,
                finished_at=now,
                duration_ms=duration_ms,
                error=error,
                result=result,
                conn=conn,
            )
            self.record_outcomes(ledger, now=now, held=held, conn=conn)
            if held:
                record_auto_pause(conn, schedule_id, now=now, keep=self.history_kept)
        return status

    def record_outcomes(
        self, ledger: Ledger, *, now: datetime, held: bool = True, conn: Connection | None = None
    ) -> None:
        """Record ledger entries; `held` False: only the first, as superseded (see
        `models.slot_ledger_store.record_statement`)."""
        with transaction(self.engine, conn) as c:
            record_ledger(c, ledger, now=now, held=held)

    def retry_later(
        self,
        *,
        schedule_id: int,
        claim_token: str,
        run: RunRecord,
        retry_at: datetime,
        duration_ms: float,
        error: str | None,
        ledger: Ledger,
        now: datetime,
    ) -> str:
        """Keep a failed slot for another attempt at `retry_at`, in one transaction: the claim
        is dropped and the row held back until then (beat claims it again at `retry_at`), and
        the run row waits as `retrying`. If the claim was lost, the run is superseded instead
        (with its ledger entry: `ledger` holds only the own slot). Returns the run's status."""
        with self.engine.begin() as conn:
            held = (
                conn.execute(
                    update(producer_schedules)
                    .where(_s.id == schedule_id, _s.claim_token == claim_token)
                    .values(claimed_until=retry_at, claim_token=None, updated_at=now)
                ).rowcount
                == 1
            )
            status = RunStatus.RETRYING if held else RunStatus.SUPERSEDED
            self.finish_run(
                run,
                status=status,
                finished_at=now,
                duration_ms=duration_ms,
                error=error,
                result=None,
                conn=conn,
            )
            if not held:
                record_ledger(conn, ledger, now=now, held=False)
        return status

    def miss_scheduled(
        self,
        *,
        schedule_id: int,
        claim_token: str,
        outcome: SlotOutcome,
        run: RunRecord,
        reason: str,
        ledger: Ledger,
        now: datetime,
    ) -> str:
        """A slot that started too late is not run: its run row is finished skipped with the
        reason and the slot committed like a run's (its ledger entry saying missed), in one
        transaction. Returns the run's status (`superseded` if the claim was lost)."""
        with self.engine.begin() as conn:
            held = self.commit_slot(
                schedule_id, claim_token, outcome, now=now, ledger=ledger, conn=conn
            )
            status = RunStatus.SKIPPED if held else RunStatus.SUPERSEDED
            self.finish_run(
                run,
                status=status,
                finished_at=now,
                duration_ms=0.0,
                error=reason,
                result=None,
                conn=conn,
            )
            if not held:
                record_ledger(conn, ledger, now=now, held=False)
        return status

    def hand_off(
        self,
        *,
        schedule: ScheduleRecord,
        claim_token: str,
        run: RunRecord,
        next_run_at: datetime | None,
        max_concurrent: int,
        lease: timedelta,
        ledger: Ledger,
        busy: Ledger,
        now: datetime,
    ) -> RunStatus:
        """`overlap: allow`: let the next slot fall due while this run runs, in one transaction.

        Runs of the producer still `running` a whole lease after they started lost their
        worker (a run's hard time limit is shorter): they are finished failed, with their
        ledger entries. Then, if fewer than `max_concurrent` others run, the schedule moves on
        to `next_run_at` and the claim is released (`ledger`: the slots passed): `running`. Else
        this slot is not run: its row is finished skipped and the schedule moves on (`busy`: its
        entries): `skipped`. If `claim_token` no longer holds the claim, the run row and the
        slot (the first of `busy`) are recorded superseded: `superseded`."""
        with self.engine.begin() as conn:
            died = conn.execute(
                update(producer_runs)
                .where(
                    _r.workflow_id == schedule.workflow_id,
                    _r.producer_name == schedule.producer_name,
                    _r.status == RunStatus.RUNNING.value,
                    _r.started_at < now - lease,
                    _r.id != run.id,
                )
                .values(status=RunStatus.FAILED.value, error=WORKER_DIED, finished_at=now)
                .returning(_r.scheduled_for, _r.attempt, _r.started_at)
            ).all()
            if died:
                lost = tuple(
                    LedgerEntry(
                        slot=row.scheduled_for,
                        outcome=SlotFate.FAILED,
                        reason=WORKER_DIED,
                        policy="overlap=allow",
                        attempts=row.attempt,
                        started_at=row.started_at,
                        finished_at=now,
                    )
                    for row in died
                )
                record_ledger(
                    conn, Ledger(schedule.workflow_id, schedule.producer_name, lost), now=now
                )
            running = conn.execute(
                select(func.count())
                .select_from(producer_runs)
                .where(
                    _r.workflow_id == schedule.workflow_id,
                    _r.producer_name == schedule.producer_name,
                    _r.status == RunStatus.RUNNING.value,
                    _r.id != run.id,
                )
            ).scalar_one()
            free = running < max_concurrent
            held = (
                conn.execute(
                    update(producer_schedules)
                    .where(_s.id == schedule.id, _s.claim_token == claim_token)
                    .values(
                        next_run_at=next_run_at,
                        claimed_until=None,
                        claim_token=None,
                        updated_at=now,
                    )
                ).rowcount
                == 1
            )
            record_ledger(conn, ledger if held and free else busy, now=now, held=held)
            status = RunStatus.RUNNING if held and free else RunStatus.SUPERSEDED
            if not (held and free):
                self.finish_run(
                    run,
                    status=RunStatus.SKIPPED if held else RunStatus.SUPERSEDED,
                    finished_at=now,
                    duration_ms=0.0,
                    error=f"skipped: {running} runs already running (max_concurrent)"
                    if held
                    else SUPERSEDED_REASON,
                    result=None,
                    conn=conn,
                )
                status = RunStatus.SKIPPED if held else RunStatus.SUPERSEDED
        return status

    def finish_handed_off(
        self,
        *,
        schedule_id: int,
        outcome: SlotOutcome,
        run: RunRecord,
        duration_ms: float,
        error: str | None,
        result: Any,
        ledger: Ledger,
        now: datetime,
    ) -> str:
        """Finish an `overlap: allow` run: its row, its ledger entry, and the producer's last
        status, failures and state, leaving the next run (already moved on) alone."""
        params = _commit_slot_params(schedule_id, "", outcome, now=now)
        with self.engine.begin() as conn:
            conn.execute(_RECORD_HANDED_OFF, params)
            finished = self.finish_run(
                run,
                status=outcome.status,
                finished_at=now,
                duration_ms=duration_ms,
                error=error,
                result=result,
                conn=conn,
            )
            record_ledger(conn, ledger, now=now)
            if _may_auto_pause(outcome):
                record_auto_pause(conn, schedule_id, now=now, keep=self.history_kept)
        return outcome.status if finished else RunStatus.SUPERSEDED

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
        params = _take_claim_params(
            workflow_id,
            producer_name,
            claim_token,
            workflow_name=workflow_name,
            scheduled_for=scheduled_for,
            now=now,
            lease=lease,
        )
        with transaction(self.engine, conn) as c:
            row = c.execute(_TAKE_CLAIM, params).first()
        return schedule_record(row) if row else None

    def commit_slot(
        self,
        schedule_id: int,
        claim_token: str,
        outcome: SlotOutcome,
        *,
        now: datetime,
        ledger: Ledger | None = None,
        conn: Connection | None = None,
    ) -> bool:
        """Write a finished slot back, only if `claim_token` still holds the claim, with the
        ledger entries of the slots it passes.

        False means the claim was lost (lease expired and re-sent, or the schedule changed):
        nothing is written, so a run never overwrites a newer schedule.
        """
        params = _commit_slot_params(schedule_id, claim_token, outcome, now=now)
        with transaction(self.engine, conn) as c:
            held = c.execute(_COMMIT_SLOT, params).rowcount == 1
            if held and ledger is not None:
                self.record_outcomes(ledger, now=now, conn=c)
        return held

    # --- the run row ---------------------------------------------------------------------------

    def begin_run(
        self,
        *,
        workflow_id: int,
        producer_name: str,
        scheduled_for: datetime,
        trigger: Trigger | str,
        task_id: str | None,
        now: datetime,
        skipped: SkipReason | None = None,
        conn: Connection | None = None,
    ) -> RunRecord | None:
        """Record that a slot starts running (or, with a `skipped` reason such as
        SkipReason.PAUSED, that it was skipped), in one statement.

        A slot whose earlier attempt died while running is taken over (attempt + 1). A slot
        that already finished returns None: it must not run again.
        """
        params = _begin_params(workflow_id, producer_name, scheduled_for, trigger, task_id, now=now)
        params |= _start_outcome_params(skipped, now)
        with transaction(self.engine, conn) as c:
            row = c.execute(_begin_statement(c.dialect.name), params).first()
        return run_record(row) if row else None

    def finish_run(
        self,
        run: RunRecord,
        *,
        status: str,
        finished_at: datetime,
        duration_ms: float,
        error: str | None,
        result: Any,
        conn: Connection | None = None,
    ) -> bool:
        """Finish the run row of this attempt; False if a later attempt has taken the slot
        over (a fenced late commit never rewrites the row of the attempt that replaced it)."""
        params = _finish_params(run, status, finished_at, duration_ms, error, result)
        with transaction(self.engine, conn) as c:
            return c.execute(_FINISH_RUN, params).rowcount == 1

    # --- triggered runs ------------------------------------------------------------------------

    def start_triggered(
        self,
        *,
        workflow_id: int,
        workflow_name: str,
        producer_name: str,
        scheduled_for: datetime,
        trigger_token: str,
        task_id: str | None,
        now: datetime,
    ) -> tuple[ScheduleRecord, RunRecord] | SkipReason:
        """Start the pending trigger request the message names, in one transaction: only if
        workflow (id and name), producer, slot and token all match and it is still pending.
        A paused or deleted producer's request is finished as skipped instead. Nothing is
        written for a message that matches no request (forged or replayed)."""
        with self.engine.begin() as conn:
            row = conn.execute(
                _SCHEDULE_ROW, {"b_workflow_id": workflow_id, "b_producer_name": producer_name}
            ).first()
            schedule = None if row is None else schedule_record(row)
            skipped = (
                SkipReason.PRODUCER_GONE
                if schedule is None
                else SkipReason.PAUSED
                if schedule.paused
                else None
            )
            params = {
                "b_workflow_id": workflow_id,
                "b_workflow_name": workflow_name,
                "b_producer_name": producer_name,
                "b_scheduled_for": scheduled_for,
                "b_trigger_token": trigger_token,
                "b_task_id": task_id,
                "b_started_at": now,
            } | _start_outcome_params(skipped, now)
            started = conn.execute(_START_TRIGGERED, params).first()
        if started is None:
            return SkipReason.NO_TRIGGER_REQUEST
        run = run_record(started)
        if schedule is None or run.status == RunStatus.SKIPPED:
            assert skipped is not None  # a request is finished as skipped only for a reason
            return skipped
        return schedule, run

    def finish_triggered(
        self,
        *,
        schedule_id: int,
        outcome: SlotOutcome,
        run: RunRecord,
        duration_ms: float,
        error: str | None,
        result: Any,
        now: datetime,
    ) -> str:
        """Note a triggered run's result and state on its schedule row, leaving the next run
        and any claim alone, and finish its run row, in one transaction; returns its status."""
        with self.engine.begin() as conn:
            conn.execute(
                _RECORD_MANUAL_RUN,
                {
                    "b_id": schedule_id,
                    "b_last_run_at": outcome.ran_at,
                    "b_last_status": outcome.status,
                    "b_state": outcome.state,
                    "b_now": now,
                },
            )
            self.finish_run(
                run,
                status=outcome.status,
                finished_at=now,
                duration_ms=duration_ms,
                error=error,
                result=result,
                conn=conn,
            )
        return outcome.status


# --- claims a run takes and gives back ---------------------------------------------------------

# A message names its workflow by id and name, and its slot: the claim must hold all three.
_NAMED_WORKFLOW = (
    select(workflows.c.id)
    .where(workflows.c.name == bind("b_workflow_name", workflows.c.name))
    .scalar_subquery()
)
_TAKE_CLAIM: Update = (
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


def _take_claim_params(
    workflow_id: int,
    producer_name: str,
    claim_token: str,
    *,
    workflow_name: str,
    scheduled_for: datetime,
    now: datetime,
    lease: timedelta,
) -> dict[str, Any]:
    return {
        "b_workflow_id": workflow_id,
        "b_workflow_name": workflow_name,
        "b_producer_name": producer_name,
        "b_claim_token": claim_token,
        "b_claimed_slot": scheduled_for,
        "b_now": now,
        "b_until": now + lease,
    }


_SUCCEEDED = bindparam("b_succeeded", type_=Boolean())
_FAILED = bindparam("b_failed", type_=Boolean())
# NULL (no pause_after_failures) compares as unknown: never true.
_AUTO_PAUSE = _FAILED & (_s.consecutive_failures + 1 >= bindparam("b_pause_after", type_=Integer()))


def _may_auto_pause(outcome: SlotOutcome) -> bool:
    """Whether writing `outcome` back can pause the producer (see _AUTO_PAUSE)."""
    return outcome.status == RunStatus.FAILED and outcome.pause_after_failures is not None


# What a finished slot writes on its producer's row besides the next run and the claim.
_OUTCOME_VALUES: dict[str, Any] = {
    "last_run_at": bind("b_last_run_at", _s.last_run_at),
    "last_status": bind("b_last_status", _s.last_status),
    "consecutive_failures": case(
        (_SUCCEEDED, 0), (_FAILED, _s.consecutive_failures + 1), else_=_s.consecutive_failures
    ),
    "state": bind("b_state", _s.state),
    "updated_at": bind("b_now", _s.updated_at),
    # pause_after_failures: the failure that reaches it pauses the producer, saying why.
    "paused": case((_AUTO_PAUSE, true()), else_=_s.paused),
    "paused_at": case((_AUTO_PAUSE, bind("b_now", _s.paused_at)), else_=_s.paused_at),
    "paused_by": case((_AUTO_PAUSE, literal(AUTO_PAUSE_ACTOR)), else_=_s.paused_by),
    "pause_note": case((_AUTO_PAUSE, bind("b_pause_note", _s.pause_note)), else_=_s.pause_note),
}
_COMMIT_SLOT: Update = (
    update(producer_schedules)
    .where(
        _s.id == bind("b_id", _s.id),
        _s.claim_token == bind("b_claim_token", _s.claim_token),
    )
    .values(
        next_run_at=bind("b_next_run_at", _s.next_run_at),
        claimed_until=None,
        claim_token=None,
        **_OUTCOME_VALUES,
    )
)
# An `overlap: allow` run's outcome: its next run moved on when it started (see `hand_off`).
_RECORD_HANDED_OFF: Update = (
    update(producer_schedules).where(_s.id == bind("b_id", _s.id)).values(**_OUTCOME_VALUES)
)


def _commit_slot_params(
    schedule_id: int, claim_token: str, outcome: SlotOutcome, *, now: datetime
) -> dict[str, Any]:
    return {
        "b_id": schedule_id,
        "b_claim_token": claim_token,
        "b_next_run_at": outcome.next_run_at,
        "b_last_run_at": outcome.ran_at,
        "b_last_status": outcome.status,
        "b_succeeded": outcome.status == RunStatus.SUCCEEDED,
        "b_failed": outcome.status == RunStatus.FAILED,
        "b_pause_after": outcome.pause_after_failures,
        "b_pause_note": outcome.pause_note,
        "b_state": outcome.state,
        "b_now": now,
    }


# --- the run row -------------------------------------------------------------------------------


def _take_over_running(stmt: Any) -> Any:
    """The rule for an INSERT of a starting row into a slot that has one already: take over a
    slot whose last attempt died running (still `running`) or failed and waits for a retry
    (`retrying`): attempt + 1, now running or skipped as the INSERT says; leave a finished
    slot alone, so the INSERT returns nothing and the
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
        # Two comparisons, not IN [...]: an IN list is an "expanding" parameter, which makes
        # SQLAlchemy render the statement's SQL again on every execution.
        where=or_(_r.status == RunStatus.RUNNING.value, _r.status == RunStatus.RETRYING.value),
    )


@cache
def _begin_statement(dialect: str) -> Any:
    """INSERT the running row, or take over the slot (see `_take_over_running`)."""
    return _take_over_running(
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


def _begin_params(
    workflow_id: int,
    producer_name: str,
    scheduled_for: datetime,
    trigger: str,
    task_id: str | None,
    *,
    now: datetime,
) -> dict[str, Any]:
    """The begin statement's parameters (and those of its PostgreSQL single-statement form)."""
    return {
        "b_workflow_id": workflow_id,
        "b_producer_name": producer_name,
        "b_scheduled_for": scheduled_for,
        "b_trigger": trigger,
        "b_task_id": task_id,
        "b_started_at": now,
    }


def _start_outcome_params(skipped: SkipReason | None, now: datetime) -> dict[str, Any]:
    """How a started slot's row begins: running, or skipped (and finished) for a reason."""
    if skipped is not None:
        return {"b_start_status": RunStatus.SKIPPED, "b_start_error": skipped, "b_start_end": now}
    return {"b_start_status": RunStatus.RUNNING, "b_start_error": None, "b_start_end": None}


_FINISH_RUN: Update = (
    update(producer_runs)
    .where(_r.id == bind("b_run_id", _r.id), _r.attempt == bind("b_attempt", _r.attempt))
    .values(
        status=bind("b_status", _r.status),
        finished_at=bind("b_finished_at", _r.finished_at),
        duration_ms=bind("b_duration_ms", _r.duration_ms),
        error=bind("b_error", _r.error),
        result=bind("b_result", _r.result),
    )
)


def _finish_params(
    run: RunRecord,
    status: str,
    finished_at: datetime,
    duration_ms: float,
    error: str | None,
    result: Any,
) -> dict[str, Any]:
    return {
        "b_run_id": run.id,
        "b_attempt": run.attempt,
        "b_status": status,
        "b_finished_at": finished_at,
        "b_duration_ms": duration_ms,
        "b_error": error,
        "b_result": result,
    }


# --- PostgreSQL: each scheduled step in one statement ------------------------------------------


def _start_statement() -> Any:
    """_TAKE_CLAIM, then the run row inserted only if the claim was taken, in one statement:
    running, or skipped with the reason `paused` if the claimed row is paused. Parameters:
    `_take_claim_params | _begin_params`."""
    claim = _TAKE_CLAIM.cte("claim")
    paused = claim.c.paused
    run = (
        _take_over_running(
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
        *(claim.c[name] for name in _SCHEDULE_KEYS),
        *(run.c[name].label(_RUN_PREFIX + name) for name in _RUN_KEYS),
    ).select_from(claim.outerjoin(run, true()))


def _started_slot(row: tuple[Any, ...]) -> StartedSlot:
    """The start statement's row: the schedule's columns, then the run's (all NULL if no run
    row was written)."""
    split = len(_SCHEDULE_KEYS)
    run = row[split:]
    return StartedSlot(
        schedule=ScheduleRecord(**dict(zip(_SCHEDULE_KEYS, row[:split], strict=True))),
        run=None if run[0] is None else _run_record(_RUN_KEYS, run),
    )


def _run_record(keys: tuple[str, ...], row: tuple[Any, ...]) -> RunRecord:
    fields = dict(zip(keys, row, strict=True))
    del fields["trigger_token"]  # never set on a scheduled run, and no record carries one
    return RunRecord(**fields)


@cache
def _finish_pg(entries: int) -> Any:
    """_COMMIT_SLOT, then the run row finished (as superseded if it wrote nothing) and the
    `entries` ledger rows recorded under the same fence, in one statement. Parameters:
    `_commit_slot_params | _finish_params | Ledger.params`."""
    slot = _COMMIT_SLOT.returning(producer_schedules.c.id).cte("slot")
    held = exists(select(slot.c.id))
    statement = _FINISH_RUN.values(
        status=case((held, bind("b_status", _r.status)), else_=RunStatus.SUPERSEDED.value)
    ).add_cte(slot)
    if entries:
        ledger = record_statement("postgresql", entries, held).cte("ledger")
        statement = statement.add_cte(ledger)
    return statement.returning(_r.status)


_START_PG = _start_statement()


# --- triggered runs ----------------------------------------------------------------------------

_SCHEDULE_ROW = select(producer_schedules).where(
    _s.workflow_id == bind("b_workflow_id", _s.workflow_id),
    _s.producer_name == bind("b_producer_name", _s.producer_name),
)

# A pending trigger request becomes running (or skipped, if paused) only with its own token.
# Parameters: those named in `start_triggered`, with `_start_outcome_params`.
_START_TRIGGERED: Update = (
    update(producer_runs)
    .where(
        _r.workflow_id == bind("b_workflow_id", _r.workflow_id),
        _r.workflow_id == _NAMED_WORKFLOW,
        _r.producer_name == bind("b_producer_name", _r.producer_name),
        _r.scheduled_for == bind("b_scheduled_for", _r.scheduled_for),
        _r.trigger.in_([Trigger.MANUAL.value, Trigger.BACKFILL.value]),
        _r.trigger_token == bind("b_trigger_token", _r.trigger_token),
        _r.status == RunStatus.PENDING.value,
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

# A triggered run's result and state, without touching the schedule's next run or claim.
_RECORD_MANUAL_RUN: Update = (
    update(producer_schedules)
    .where(_s.id == bind("b_id", _s.id))
    .values(
        last_run_at=bind("b_last_run_at", _s.last_run_at),
        last_status=bind("b_last_status", _s.last_status),
        state=bind("b_state", _s.state),
        updated_at=bind("b_now", _s.updated_at),
    )
)

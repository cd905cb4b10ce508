"""drumline from Python: what an application uses instead of shelling out to the CLI.

```python
from workers.client import Drumline

drumline = Drumline()  # the DRUMLINE_* settings; or Drumline(settings, app=celery_app)
summary = drumline.deploy({"name": "prices", "producers": {...}}, note="add EURUSD")
run = drumline.trigger("prices", "poll-exchange", wait=30)
history = drumline.history("prices")
```

Changes are lifecycle tasks, validated here first exactly as the workers will (a bad definition
raises `InvalidDefinitionError` and sends nothing); a change's answer is a `ChangeSummary`, and a
refusal raises the project's own error (`models.errors`, all under `DrumlineError`). Reads come
straight from the database. The `drumline` command line is a thin layer over this class.
"""

from __future__ import annotations

import getpass
import os
import re
import secrets
import socket
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any

from celery import Celery
from celery.exceptions import TimeoutError as CeleryTimeoutError
from kombu.exceptions import OperationalError
from sqlalchemy import Engine

from beat.dispatch import PRODUCERS_QUEUE, RUN_PRODUCER, run_producer_call
from models.backfill_plan import BackfillRange, backfill_range
from models.backfill_store import BackfillProgress, BackfillRecord, BackfillStore, SlotRequest
from models.change_store import MAX_VERSION, ChangeAuthor, ChangeRecord, ChangeStore
from models.db import make_engine, redact_url
from models.definitions import SLUG_PATTERN, WorkflowDefinition, parse_definition
from models.errors import (
    BackfillRangeError,
    BrokerUnreachableError,
    DefinitionError,
    DrumlineError,
    LifecycleError,
    NoAnswerError,
    ProducerNotFoundError,
    TriggerRefusedError,
    TriggerTimeError,
    VersionNotFoundError,
    WorkflowNotFoundError,
)
from models.log_text import loggable
from models.read_models import ProducerStatus, producer_status
from models.records import RunRecord, ScheduleRecord, WorkflowRecord
from models.run_store import TERMINAL_STATUSES, RunStore
from models.schedule_store import ProducerScheduleStore
from models.stored_schedules import schedule_from_row
from models.types import utc_now
from models.vocabulary import WorkflowStatus
from models.workflow_diff import WorkflowDiff
from models.workflow_store import WorkflowStore
from workers.registry import load_producer_modules
from workers.services.lifecycle import (
    ChangeSummary,
    DeployPlan,
    LifecycleReader,
    definition_diff,
    invalid_definition,
)
from workers.settings import Settings
from workers.tasks.celery_config import create_app

PUBLISH_RETRY = {"max_retries": 3, "interval_start": 0.2, "interval_step": 0.5, "interval_max": 1}
DEFAULT_WAIT_S = 30.0
POLL_S = 0.2
TOKEN_BYTES = 16
# How far ahead `trigger(at=...)` may record a one-off run.
MAX_TRIGGER_AHEAD = timedelta(days=366)
# How fast beat sends a backfill's requests, in runs per second.
DEFAULT_BACKFILL_RATE = 10.0
MAX_BACKFILL_RATE = 1000.0
MIN_BACKFILL_RATE = 0.01


def default_actor() -> str:
    """`user@host` of this process: who the history names when no actor is given. A process
    whose user has no name (a container's bare uid) is `uid<N>@host`."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = f"uid{os.getuid()}"
    return f"{user}@{socket.gethostname()}"


@dataclass(frozen=True)
class PendingChange:
    """A lifecycle task sent to the workers; `wait()` for what it did."""

    workflow: str
    task_id: str
    result: Any  # Celery's AsyncResult

    def wait(self, timeout: float = DEFAULT_WAIT_S) -> ChangeSummary:
        """The change's summary; its refusal (busy, conflict, invalid, ...) raised as the
        project's error, or NoAnswerError if no worker answered within `timeout` seconds."""
        try:
            value = self.result.get(timeout=timeout, propagate=False)
        except CeleryTimeoutError:
            raise NoAnswerError(
                f"no answer within {timeout:g}s: is a worker consuming the 'lifecycle' queue?",
                {"workflow": self.workflow, "task_id": self.task_id},
            ) from None
        if self.result.successful():
            return ChangeSummary.from_json(value)
        if isinstance(value, DrumlineError):
            raise value
        raise LifecycleError(str(value) or type(value).__name__, {"workflow": self.workflow})


class Drumline:
    """A client of one drumline system: its broker (for changes) and database (for reads).

    `settings` default to the DRUMLINE_* environment; `app` is a Celery app to send with
    (default: one built from the settings); `engine` the database (default: the settings'
    URL). Both are opened on first use only. `actor` is who the history names for changes
    made through this client (default `user@host`).
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        app: Celery | None = None,
        engine: Engine | None = None,
        actor: str | None = None,
    ) -> None:
        self.settings = settings if settings is not None else Settings.from_env()
        self._app = app
        self._engine = engine
        self.actor = actor if actor is not None else default_actor()
        ChangeAuthor(self.actor)  # refuses a bad actor now, not at the first change

    @cached_property
    def app(self) -> Celery:
        return self._app if self._app is not None else create_app(self.settings)

    @cached_property
    def engine(self) -> Engine:
        return self._engine if self._engine is not None else make_engine(self.settings.database_url)

    # --- changes: lifecycle tasks ----------------------------------------------------------

    def send_deploy(
        self, definition: WorkflowDefinition | Mapping[str, Any], *, note: str | None = None
    ) -> PendingChange:
        """Validate `definition` as the workers will, then send its deploy task."""
        parsed = self._validated(definition)
        # Only what was written: never larger than what was validated.
        data = parsed.model_dump(mode="json", exclude_defaults=True)
        return self._send("drumline.deploy_workflow", parsed.name, [data], note)

    def send_pause(
        self, name: str, *, producer: str | None = None, note: str | None = None
    ) -> PendingChange:
        """Pause the workflow, or only its `producer`; `status` shows who, when and why."""
        if producer is None:
            return self._send("drumline.pause_workflow", name, [name], note)
        return self._send("drumline.pause_producer", name, [name, producer], note)

    def send_resume(
        self, name: str, *, producer: str | None = None, note: str | None = None
    ) -> PendingChange:
        """Resume the workflow, or only its `producer`, from the next slot after now."""
        if producer is None:
            return self._send("drumline.resume_workflow", name, [name], note)
        return self._send("drumline.resume_producer", name, [name, producer], note)

    def send_delete(self, name: str, *, note: str | None = None) -> PendingChange:
        return self._send("drumline.delete_workflow", name, [name], note)

    def send_rollback(self, name: str, version: int, *, note: str | None = None) -> PendingChange:
        """Deploy version `version` of the workflow again, as a new version; the workers read
        that definition from the history, under the workflow's lock and version fence."""
        if not 1 <= version <= MAX_VERSION:
            raise VersionNotFoundError(
                f"workflow {name!r} has no version {version}",
                {"workflow": name, "version": version},
            )
        return self._send("drumline.rollback_workflow", name, [name, version], note)

    def deploy(
        self,
        definition: WorkflowDefinition | Mapping[str, Any],
        *,
        note: str | None = None,
        timeout: float = DEFAULT_WAIT_S,
    ) -> ChangeSummary:
        return self.send_deploy(definition, note=note).wait(timeout)

    def pause(
        self,
        name: str,
        *,
        producer: str | None = None,
        note: str | None = None,
        timeout: float = DEFAULT_WAIT_S,
    ) -> ChangeSummary:
        return self.send_pause(name, producer=producer, note=note).wait(timeout)

    def resume(
        self,
        name: str,
        *,
        producer: str | None = None,
        note: str | None = None,
        timeout: float = DEFAULT_WAIT_S,
    ) -> ChangeSummary:
        return self.send_resume(name, producer=producer, note=note).wait(timeout)

    def delete(
        self, name: str, *, note: str | None = None, timeout: float = DEFAULT_WAIT_S
    ) -> ChangeSummary:
        return self.send_delete(name, note=note).wait(timeout)

    def rollback(
        self, name: str, version: int, *, note: str | None = None, timeout: float = DEFAULT_WAIT_S
    ) -> ChangeSummary:
        return self.send_rollback(name, version, note=note).wait(timeout)

    def trigger(
        self,
        name: str,
        producer: str,
        *,
        at: datetime | None = None,
        wait: float | None = None,
    ) -> RunRecord:
        """Run `producer` of workflow `name` once, now or `at` a later time, without moving its
        next run.

        The request is recorded first (a pending run with a random token the message must
        carry); a request `at` a later time is sent by beat when it comes. Returns that
        pending run, or with `wait` (seconds, counted from the requested time) the finished
        run; NoAnswerError if it did not finish in time. A paused workflow is refused; so is
        an `at` that has passed, lies more than 366 days ahead or is a scheduled slot
        (TriggerTimeError).
        """
        workflow = self.workflow(name)
        row = ProducerScheduleStore(self.engine).get(workflow.id, producer)
        if row is None:
            raise TriggerRefusedError(f"workflow {workflow.name!r} has no producer {producer!r}")
        if workflow.status == WorkflowStatus.PAUSED or row.paused:
            raise TriggerRefusedError(
                f"workflow {workflow.name!r} is paused, so nothing was triggered: "
                f"`drumline resume {workflow.name}` first"
            )
        runs = RunStore(self.engine)
        now = utc_now()
        slot = now if at is None else _later_slot(row, at, now)
        token = secrets.token_hex(TOKEN_BYTES)
        task_id, kwargs = run_producer_call(
            workflow.id, workflow.name, producer, slot, trigger_token=token
        )
        request = runs.request_trigger(
            workflow_id=workflow.id,
            producer_name=producer,
            scheduled_for=slot,
            trigger_token=token,
            task_id=task_id,
            now=now,
        )
        if request is None:
            raise TriggerRefusedError(f"{task_id} has a run already; nothing was triggered: retry")
        if at is None:
            try:
                self._publish(RUN_PRODUCER, kwargs=kwargs, task_id=task_id, queue=PRODUCERS_QUEUE)
            except BaseException:
                runs.withdraw_trigger(request.id)  # never sent: leave no request behind
                raise
        if wait is None:
            return request
        run = self.wait_for_run(request, wait + (slot - now).total_seconds())
        if run.status not in TERMINAL_STATUSES:
            raise NoAnswerError(f"the run did not finish within {wait:g}s", {"task_id": task_id})
        return run

    def wait_for_run(self, run: RunRecord, timeout: float) -> RunRecord:
        """`run` once it has finished, or as it stands after `timeout` seconds (for a caller
        that shows a run still going rather than an error, as the web view does)."""
        runs = RunStore(self.engine)
        deadline = time.monotonic() + timeout
        while True:
            run = runs.get_slot(run.workflow_id, run.producer_name, run.scheduled_for) or run
            if run.status in TERMINAL_STATUSES or time.monotonic() >= deadline:
                return run
            time.sleep(POLL_S)

    def cancel(self, name: str, producer: str, at: datetime) -> RunRecord:
        """Withdraw the trigger request of `producer` at `at` if it has not started: it is
        recorded skipped (cancelled), and its message, if sent, runs nothing.
        TriggerRefusedError if no such request is pending."""
        workflow = self.workflow(name)
        if ProducerScheduleStore(self.engine).get(workflow.id, producer) is None:
            raise TriggerRefusedError(f"workflow {workflow.name!r} has no producer {producer!r}")
        cancelled = RunStore(self.engine).cancel_trigger(
            workflow.id, producer, at.replace(microsecond=0), utc_now()
        )
        if cancelled is None:
            raise TriggerRefusedError(
                f"no pending trigger request of {workflow.name}.{producer} at {at.isoformat()}: "
                "nothing was cancelled (`drumline runs` lists the requests)"
            )
        return cancelled

    def plan_backfill(
        self, name: str, producer: str, *, start: datetime, end: datetime
    ) -> tuple[BackfillRange, list[datetime]]:
        """What `backfill` would do now, writing nothing: the schedule's slots in [start, end]
        before the producer's next run, and those of them it would run (no successful run
        yet). BackfillRangeError names the argument at fault; an unknown workflow or producer
        and a paused one are refused too."""
        workflow, row = self._backfilled_producer(name, producer)
        schedule = schedule_from_row(row.schedule_type, row.schedule_value, row.timezone)
        slots = backfill_range(schedule, start, end, now=utc_now(), before=row.next_run_at)
        return slots, BackfillStore(self.engine).unrun(workflow.id, producer, slots)

    def backfill(
        self,
        name: str,
        producer: str,
        *,
        start: datetime,
        end: datetime,
        rate: float = DEFAULT_BACKFILL_RATE,
        note: str | None = None,
    ) -> BackfillRecord:
        """Run every slot of `producer`'s schedule in [start, end] that has no successful run
        yet, oldest first, once each, `rate` a second: recorded as a backfill and one pending
        request per slot, which beat sends (so no worker needs to stay up for it). A slot with
        a run row that did not fail is left alone. Progress: `backfills(name)`."""
        checked_rate(rate)
        ChangeAuthor(self.actor, note)  # refuses a note the record cannot hold
        slots, unrun = self.plan_backfill(name, producer, start=start, end=end)
        workflow = self.workflow(name)
        now = utc_now()
        requests = []
        for index, slot in enumerate(unrun):
            token = secrets.token_hex(TOKEN_BYTES)
            task_id, _ = run_producer_call(
                workflow.id, workflow.name, producer, slot, trigger_token=token
            )
            not_before = now + timedelta(seconds=index / rate)
            requests.append(SlotRequest(slot, token, task_id, not_before))
        return BackfillStore(self.engine).create(
            workflow_id=workflow.id,
            producer_name=producer,
            slots=slots,
            requests=requests,
            rate=rate,
            actor=self.actor,
            note=note,
            lease=self.settings.lease,
            now=now,
        )

    def cancel_backfill(self, backfill_id: int) -> tuple[BackfillRecord, int]:
        """Withdraw a running backfill's requests that have not started (each recorded skipped,
        `cancelled`); returns it and how many were withdrawn. TriggerRefusedError if no
        backfill of that id is running."""
        cancelled = BackfillStore(self.engine).cancel(backfill_id, utc_now())
        if cancelled is None:
            raise TriggerRefusedError(
                f"no running backfill {backfill_id}: nothing was cancelled "
                "(`drumline status NAME` lists the running backfills)"
            )
        return cancelled

    def backfills(self, name: str) -> list[BackfillProgress]:
        """The workflow's running backfills and how far each has come, newest first."""
        return BackfillStore(self.engine).progress(self.workflow(name).id)

    def _backfilled_producer(
        self, name: str, producer: str
    ) -> tuple[WorkflowRecord, ScheduleRecord]:
        workflow = self.workflow(name)
        row = ProducerScheduleStore(self.engine).get(workflow.id, producer)
        if row is None:
            raise ProducerNotFoundError(
                f"workflow {workflow.name!r} has no producer '{loggable(producer)}'",
                {"workflow": workflow.name, "producer": loggable(producer)},
            )
        if workflow.status == WorkflowStatus.PAUSED or row.paused:
            raise TriggerRefusedError(
                f"{workflow.name}.{producer} is paused, so nothing was backfilled: resume it first"
            )
        return workflow, row

    # --- reads: straight from the database -------------------------------------------------

    def plan(self, definition: WorkflowDefinition | Mapping[str, Any]) -> DeployPlan:
        """What deploying `definition` would do now: the deploy task's own validation and diff,
        with the producers this process knows (the built-ins and DRUMLINE_PRODUCER_MODULES).
        Writes nothing."""
        load_producer_modules(self.settings.producer_modules)
        return self._lifecycle().plan(self._validated(definition).model_dump(mode="json"))

    def plan_rollback(self, name: str, version: int) -> DeployPlan:
        """What `rollback(name, version)` would do now; writes nothing."""
        return self._lifecycle().plan_rollback(name, version)

    def workflow(self, name: str) -> WorkflowRecord:
        record = WorkflowStore(self.engine).get(name)
        if record is None:
            raise WorkflowNotFoundError(
                f"no workflow named {name!r} (see `drumline ls`)", {"workflow": name}
            )
        return record

    def workflows(self) -> list[WorkflowRecord]:
        return WorkflowStore(self.engine).list()

    def status(self, name: str) -> list[ProducerStatus]:
        return producer_status(self.engine, workflow_id=self.workflow(name).id)

    def runs(self, name: str, *, producer: str | None = None, limit: int = 50) -> list[RunRecord]:
        """The workflow's runs, newest slot first."""
        workflow = self.workflow(name)
        return RunStore(self.engine).list(workflow.id, producer_name=producer, limit=limit)

    def history(self, name: str, *, limit: int = 50) -> list[ChangeRecord]:
        """The workflow's changes, newest first (one producer's pauses and resumes, and its
        auto-pauses, too, naming it); a deleted workflow's too."""
        return ChangeStore(self.engine).list(name, limit)

    def diff(
        self, name: str, *, old: int | None = None, new: int | None = None
    ) -> tuple[ChangeRecord, ChangeRecord, WorkflowDiff]:
        """What changed from version `old` to version `new` (default: the newest deploy or
        rollback, and the one before it; pauses, resumes and deletes change no definition)."""
        lifecycle = self._lifecycle()
        history = ChangeStore(self.engine)
        if new is None:
            newest = history.newest_definition_change(name)
            if newest is None:
                raise WorkflowNotFoundError(f"workflow {name!r} has no history", {"workflow": name})
            new = newest.version
        to = lifecycle.change(name, new)
        if old is None:
            previous = history.newest_definition_change(name, before=new)
            old = new if previous is None else previous.version
        since = lifecycle.change(name, old)
        return since, to, definition_diff(since.definition, to.definition)

    # --- plumbing --------------------------------------------------------------------------

    def _validated(self, definition: WorkflowDefinition | Mapping[str, Any]) -> WorkflowDefinition:
        """The definition checked as `drumline deploy` checks a file before sending it (the
        workers' timeout limit; the workers check that its producers are registered)."""
        if isinstance(definition, WorkflowDefinition):
            return definition
        try:
            return parse_definition(dict(definition), max_timeout=self.settings.max_timeout)
        except DefinitionError as error:
            raise invalid_definition(definition, error) from None

    def _lifecycle(self) -> LifecycleReader:
        """Plans and history reads take no lock, so they need no Redis."""
        return LifecycleReader(self.engine, max_timeout=self.settings.max_timeout)

    def _send(
        self, task: str, workflow: str, args: Sequence[Any], note: str | None
    ) -> PendingChange:
        """Send a lifecycle task with this client's author; what its contract would refuse is
        refused here, before anything is sent."""
        if re.match(SLUG_PATTERN, workflow) is None:
            raise WorkflowNotFoundError(
                f"'{loggable(workflow)}' cannot be a workflow name (lowercase letters, digits,"
                " - and _, at most 63)",
                {"workflow": loggable(workflow)},
            )
        author = ChangeAuthor(self.actor, note)
        result = self._publish(
            task, args=list(args), kwargs={"actor": author.actor, "note": author.note}
        )
        return PendingChange(workflow, result.id, result)

    def _publish(self, task: str, **options: Any) -> Any:
        """Send a task by name; a broker that cannot be reached is a clear error, not a hang.

        The broker is checked first: `send_task` subscribes to the task's result before it
        publishes, and the result backend would retry an unreachable Redis for 20 seconds.
        """
        try:
            with self.app.connection_for_write() as connection:
                connection.ensure_connection(**PUBLISH_RETRY)
            return self.app.send_task(task, retry=True, retry_policy=PUBLISH_RETRY, **options)
        except OperationalError as exc:
            where = redact_url(self.settings.broker_url)
            raise BrokerUnreachableError(
                f"cannot reach the broker at {where} (DRUMLINE_BROKER_URL, or the Redis of a"
                f" `drumline up` running on DRUMLINE_DATA_DIR): {exc}"
            ) from None


def checked_rate(rate: float) -> float:
    """A backfill's rate within bounds, else BackfillRangeError naming `--rate`."""
    if not MIN_BACKFILL_RATE <= rate <= MAX_BACKFILL_RATE:
        raise BackfillRangeError(
            "--rate", f"{rate:g}/s is not between {MIN_BACKFILL_RATE:g} and {MAX_BACKFILL_RATE:g}"
        )
    return rate


def _later_slot(row: ScheduleRecord, at: datetime, now: datetime) -> datetime:
    """A requested run's time: a future instant within MAX_TRIGGER_AHEAD, to the second (as
    schedules' slots are), and not one of the producer's scheduled slots (one run per slot: a
    request there would take the scheduled run's place)."""
    if at <= now:
        raise TriggerTimeError(f"{at.isoformat()} has passed: give a later time")
    if at - now > MAX_TRIGGER_AHEAD:
        raise TriggerTimeError(f"{at.isoformat()} is more than 366 days ahead")
    slot = at.replace(microsecond=0)
    schedule = schedule_from_row(row.schedule_type, row.schedule_value, row.timezone)
    if schedule.next_after(slot - timedelta(microseconds=1)) == slot:
        raise TriggerTimeError(
            f"{slot.isoformat()} is a scheduled slot of {row.producer_name} already: pick "
            "another time"
        )
    return slot

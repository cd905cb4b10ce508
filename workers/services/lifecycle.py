"""Workflow lifecycle: deploy (create or update), pause, resume, delete, rollback; and plans.

Every change runs the same way:

1. validate first: an invalid definition raises `InvalidDefinitionError` and writes nothing;
2. take the workflow's Redis lock, so concurrent changes queue instead of colliding;
3. read the workflow and its version (a deploy: its plan, the same one `drumline plan` shows);
4. in ONE database transaction, re-check that version with the stores' fenced writes, apply the
   change and record it in the history. The lock may have expired under a slow change, so the
   version check is what really keeps two changes from interleaving: if it moved, the
   transaction rolls back, history entry included, and `VersionConflictError` says so.

No Celery here: the tasks in `workers/tasks/lifecycle_tasks.py` wire this to the app's settings.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine

from models.change_store import DEFAULT_HISTORY_KEPT, ChangeAuthor, ChangeRecord, ChangeStore
from models.definitions import (
    ProducerDefinition,
    WorkflowDefinition,
    parse_definition,
)
from models.errors import (
    DefinitionError,
    InvalidDefinitionError,
    VersionConflictError,
    VersionNotFoundError,
    WorkflowNotFoundError,
)
from models.fire_times import upcoming
from models.log_text import loggable
from models.records import JSONDict, ScheduleRecord, ScheduleSpec, WorkflowRecord
from models.schedule_store import ProducerScheduleStore
from models.schedules import ManualSchedule
from models.stored_schedules import schedule_from_row
from models.types import utc_now
from models.vocabulary import ChangeAction, WorkflowStatus
from models.workflow_diff import WorkflowDiff, diff_producers, workflow_field_changes
from models.workflow_store import WorkflowStore
from workers.registry import registered_names
from workers.services.locks import WorkflowLocks

logger = logging.getLogger("drumline.lifecycle")

# Where problems say they are: a definition sent to the workers has no file name.
SOURCE = "<definition>"
# Who made a change sent without an actor (by a client that predates the history).
UNKNOWN_AUTHOR = ChangeAuthor("unknown")


@dataclass
class ProducerChanges:
    """What a change did to each producer of the workflow."""

    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, list[str]]:
        return {key: sorted(names) for key, names in asdict(self).items()}


@dataclass(frozen=True)
class ChangeSummary:
    """What one change did: the lifecycle task returns `to_json()`, the CLI reads it back."""

    workflow: str
    version: int
    changes: ProducerChanges
    noop: bool  # nothing at all was written
    status: WorkflowStatus | None = None  # pause and resume
    rescheduled: tuple[str, ...] | None = None  # resume: producers whose missed run moved on
    deleted: bool = False

    def to_json(self) -> JSONDict:
        """Flat, sorted lists; `status`, `rescheduled` and `deleted` only where they apply."""
        data: JSONDict = {
            "workflow": self.workflow,
            "version": self.version,
            **self.changes.as_dict(),
            "noop": self.noop,
        }
        if self.status is not None:
            data["status"] = self.status.value
        if self.rescheduled is not None:
            data["rescheduled"] = list(self.rescheduled)
        if self.deleted:
            data["deleted"] = True
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ChangeSummary:
        status, rescheduled = data.get("status"), data.get("rescheduled")
        return cls(
            workflow=str(data["workflow"]),
            version=int(data["version"]),
            changes=ProducerChanges(**{key: list(data[key]) for key in _CHANGE_KINDS}),
            noop=bool(data["noop"]),
            status=None if status is None else WorkflowStatus(status),
            rescheduled=None if rescheduled is None else tuple(rescheduled),
            deleted=bool(data.get("deleted", False)),
        )


_CHANGE_KINDS = tuple(kind.name for kind in fields(ProducerChanges))


@dataclass(frozen=True)
class DeployPlan:
    """What deploying a definition does, as read from the database: `drumline plan` shows it
    and writes nothing; the deploy task computes the same plan under the lock and applies it."""

    workflow: str
    current: WorkflowRecord | None  # None: the deploy creates the workflow
    stored: JSONDict  # the definition as the workflow row keeps it
    diff: WorkflowDiff
    # The row each producer's definition calls for; workflow_id is 0 for a new workflow.
    specs: Mapping[str, ScheduleSpec]
    now: datetime

    @property
    def noop(self) -> bool:
        """Whether the deploy writes nothing: the stored definition is this one already."""
        return self.current is not None and self.current.definition == self.stored

    @property
    def changes(self) -> ProducerChanges:
        return ProducerChanges(**{kind: self.diff.names(kind) for kind in _CHANGE_KINDS})

    def upcoming(self, count: int) -> dict[str, list[datetime]]:
        """The next `count` fire times of each producer the deploy gives a fresh next run (added
        or re-scheduled); the first is the next run it writes."""
        times: dict[str, list[datetime]] = {}
        for diff in self.diff.producers:
            spec = self.specs.get(diff.producer)
            if spec is not None and diff.rescheduled:
                schedule = schedule_from_row(spec.schedule_type, spec.schedule_value, spec.timezone)
                times[diff.producer] = upcoming(schedule, self.now, count)
        return times


def definition_diff(old: JSONDict, new: JSONDict) -> WorkflowDiff:
    """What changed between two stored definitions (two versions in the history), by the same
    producer diff as a deploy."""

    def rows(stored: JSONDict) -> dict[str, ScheduleSpec]:
        definition = parse_definition(stored, source=SOURCE)
        return {
            name: _spec(0, False, name, producer, None)
            for name, producer in definition.producers.items()
        }

    return WorkflowDiff(diff_producers(rows(old), rows(new)), workflow_field_changes(old, new))


class LifecycleReader:
    """What needs no lock: plans of changes and the history, against one database."""

    def __init__(
        self,
        engine: Engine,
        *,
        now: Callable[[], datetime] = utc_now,
        max_timeout: timedelta | None = None,
    ) -> None:
        self.engine = engine
        self.max_timeout = max_timeout
        self.now = now
        self.workflows = WorkflowStore(engine)
        self.schedules = ProducerScheduleStore(engine)
        self.history = ChangeStore(engine)

    def plan(self, data: object) -> DeployPlan:
        """What `deploy(data)` would do now; validates the same way and writes nothing."""
        definition = validate_definition(data, self.max_timeout)
        return self._plan(definition)

    def plan_rollback(self, name: str, version: int) -> DeployPlan:
        """What `rollback(name, version)` would do now; writes nothing."""
        return self.plan(self.change(name, version).definition)

    def change(self, name: str, version: int) -> ChangeRecord:
        """The history entry of `version`; VersionNotFoundError if there is none."""
        entry = self.history.get(name, version)
        if entry is None:
            raise VersionNotFoundError(
                f"workflow {name!r} has no version {version} in its history "
                "(see `drumline history`)",
                {"workflow": name, "version": version},
            )
        return entry

    def _plan(self, definition: WorkflowDefinition) -> DeployPlan:
        """The diff of the stored producers against `definition`, read from the database."""
        current = self.workflows.get(definition.name)
        now = self.now()
        rows = (
            {} if current is None else {r.producer_name: r for r in self.schedules.list(current.id)}
        )
        paused = current is not None and current.status == WorkflowStatus.PAUSED
        next_runs = _next_runs(definition.producers, now)
        specs = {
            name: _spec(current.id if current else 0, paused, name, producer, next_runs[name])
            for name, producer in definition.producers.items()
        }
        stored = definition.model_dump(mode="json")
        diff = WorkflowDiff(
            diff_producers(rows, specs),
            workflow_field_changes(current.definition if current else None, stored),
        )
        return DeployPlan(definition.name, current, stored, diff, specs, now)


class Lifecycle(LifecycleReader):
    """The lifecycle changes against one database, with one lock service and clock."""

    def __init__(
        self,
        engine: Engine,
        locks: WorkflowLocks,
        *,
        now: Callable[[], datetime] = utc_now,
        max_timeout: timedelta | None = None,
        history_kept: int = DEFAULT_HISTORY_KEPT,
    ) -> None:
        super().__init__(engine, now=now, max_timeout=max_timeout)
        self.locks = locks
        self.history_kept = history_kept

    def deploy(
        self,
        data: object,
        *,
        author: ChangeAuthor = UNKNOWN_AUTHOR,
        rollback_of: int | None = None,
    ) -> ChangeSummary:
        """Create the workflow or bring it to `data`, touching only the producers that changed.

        A producer whose schedule changed gets a fresh next run and loses any claim (a run in
        flight is superseded); one whose config alone changed keeps its next run, claim and
        state. Redeploying the stored definition writes nothing and reports `noop`. The change
        and its history entry commit together.
        """
        definition = validate_definition(data, self.max_timeout)
        with self.locks.hold(definition.name):
            # Read outside the transaction (no schedule math under SQLite's write lock): the
            # version fence rolls the change back if the workflow moved since.
            plan = self._plan(definition)
            if plan.current is not None and plan.noop:
                current = plan.current
                logger.info("workflow %r v%d redeployed unchanged", current.name, current.version)
                changes = ProducerChanges(unchanged=list(definition.producers))
                return _summary(current, changes, noop=True)
            diff = plan.diff.to_json()
            action = ChangeAction.DEPLOY
            if rollback_of is not None:
                action, diff = ChangeAction.ROLLBACK, {**diff, "rollback_of": rollback_of}
            with self.engine.begin() as conn:
                record = self._write_definition(plan, conn)
                self._apply_producers(record, plan, conn)
                self._record(record, action, diff, author, plan.now, conn)
        changes = plan.changes
        logger.info(
            "deployed workflow %r v%d: added %s; changed %s; removed %s; unchanged %s",
            record.name,
            record.version,
            *changes.as_dict().values(),
        )
        return _summary(record, changes, noop=False)

    def rollback(
        self, name: str, version: int, *, author: ChangeAuthor = UNKNOWN_AUTHOR
    ) -> ChangeSummary:
        """Deploy the definition of `version` as a new version, recorded as a rollback."""
        return self.deploy(
            self.change(name, version).definition, author=author, rollback_of=version
        )

    def pause(self, name: str, *, author: ChangeAuthor = UNKNOWN_AUTHOR) -> ChangeSummary:
        """Stop the workflow's producers from becoming due; runs in flight finish normally.
        Each producer records when, by whom and why (the author's actor and note) it was paused.

        Messages already queued are not run: the worker's start step sees `paused` on the row
        and records the slot skipped (models.run_path)."""
        return self._set_status(name, WorkflowStatus.PAUSED, author)

    def resume(self, name: str, *, author: ChangeAuthor = UNKNOWN_AUTHOR) -> ChangeSummary:
        """Let the producers run again, from their next slot after now: no burst of missed runs.

        The summary's `rescheduled` lists the producers whose next run passed while paused.
        """
        return self._set_status(name, WorkflowStatus.ACTIVE, author)

    def delete(self, name: str, *, author: ChangeAuthor = UNKNOWN_AUTHOR) -> ChangeSummary:
        """Delete the workflow; its schedules and run history go with it (ON DELETE CASCADE).

        Its change history stays, ending with the delete as the next version."""
        with self.locks.hold(name):
            current = self._require(name)
            with self.engine.begin() as conn:
                producers = _names(self.schedules.list(current.id, conn=conn))
                if not self.workflows.delete_fenced(current.id, current.version, conn=conn):
                    raise _conflict(name, current.version)
                gone = replace(current, version=current.version + 1)
                diff = {"removed": producers}
                self._record(gone, ChangeAction.DELETE, diff, author, self.now(), conn)
        logger.info("deleted workflow %r (v%d) and its producers %s", name, gone.version, producers)
        # The summary names the delete's own version, as its history entry does.
        return _summary(gone, ProducerChanges(removed=producers), noop=False, deleted=True)

    def _set_status(self, name: str, status: WorkflowStatus, author: ChangeAuthor) -> ChangeSummary:
        with self.locks.hold(name):
            current = self._require(name)
            if current.status == status:
                logger.info("workflow %r v%d is already %s", name, current.version, status)
                producers = _names(self.schedules.list(current.id))
                changes = ProducerChanges(unchanged=producers)
                return _summary(current, changes, noop=True, status=status)
            now = self.now()
            # Schedule math before the transaction, never inside it (SQLite's write lock).
            moves = self._missed_runs(current.id, now) if status == WorkflowStatus.ACTIVE else []
            with self.engine.begin() as conn:
                record = self.workflows.update_fenced(
                    current.id, current.version, now=now, status=status, conn=conn
                )
                if record is None:
                    raise _conflict(name, current.version)
                paused = status == WorkflowStatus.PAUSED
                # Moved first, while the rows still say why they were paused (the ledger).
                rescheduled = sorted(
                    producer
                    for schedule_id, producer, read, next_run in moves
                    if self.schedules.move_next_run(
                        schedule_id, read=read, to=next_run, now=now, conn=conn
                    )
                )
                action = ChangeAction.PAUSE if paused else ChangeAction.RESUME
                diff: JSONDict = {"status": {"old": current.status, "new": status.value}}
                if not paused:
                    diff["rescheduled"] = rescheduled
                self._record(record, action, diff, author, now, conn)
                self.schedules.set_paused(
                    record.id, paused, now=now, by=author.actor, note=author.note, conn=conn
                )
                rows = self.schedules.list(record.id, conn=conn)
        logger.info(
            "workflow %r v%d is now %s%s",
            name,
            record.version,
            status,
            f"; missed runs of {rescheduled} moved to their next slot" if rescheduled else "",
        )
        changes = ProducerChanges(unchanged=_names(rows))
        moved = None if paused else tuple(rescheduled)
        return _summary(record, changes, noop=False, status=status, rescheduled=moved)

    def _require(self, name: str) -> WorkflowRecord:
        record = self.workflows.get(name)
        if record is None:
            raise WorkflowNotFoundError(f"workflow {name!r} does not exist", {"workflow": name})
        return record

    def _write_definition(self, plan: DeployPlan, conn: Connection) -> WorkflowRecord:
        """Create or update the workflow row, fenced on the version read before. A workflow
        created again after a delete goes on from the versions in its history."""
        current = plan.current
        if current is None:
            version = self.history.latest_version(plan.workflow, conn=conn) + 1
            record = self.workflows.create(
                plan.workflow, plan.stored, now=plan.now, version=version, conn=conn
            )
        else:
            record = self.workflows.update_fenced(
                current.id, current.version, now=plan.now, definition=plan.stored, conn=conn
            )
        if record is None:
            raise _conflict(plan.workflow, current.version if current else None)
        return record

    def _apply_producers(
        self, workflow: WorkflowRecord, plan: DeployPlan, conn: Connection
    ) -> None:
        """Write what the plan's diff says: fresh rows for added and re-scheduled producers, the
        config alone for the rest of the changed ones, and delete the removed ones."""
        for diff in plan.diff.producers:
            if diff.kind == "removed":
                self.schedules.delete(workflow.id, diff.producer, conn=conn)
                continue
            spec = replace(plan.specs[diff.producer], workflow_id=workflow.id)
            if diff.rescheduled:
                self.schedules.upsert(spec, now=plan.now, conn=conn)
            elif diff.kind == "changed":
                self.schedules.update_config(
                    workflow.id,
                    diff.producer,
                    run=spec.run,
                    params=spec.params,
                    timeout_seconds=spec.timeout_seconds,
                    policy=spec.policy,
                    now=plan.now,
                    conn=conn,
                )

    def _record(
        self,
        workflow: WorkflowRecord,
        action: ChangeAction,
        diff: JSONDict,
        author: ChangeAuthor,
        now: datetime,
        conn: Connection,
    ) -> None:
        """The history entry of a change, in the change's own transaction."""
        logger.info(
            "recording %s of workflow %r v%d by %s",
            action,
            workflow.name,
            workflow.version,
            loggable(author.actor),
        )
        self.history.record(
            workflow=workflow.name,
            version=workflow.version,
            action=action,
            definition=workflow.definition,
            diff=diff,
            author=author,
            now=now,
            keep=self.history_kept,
            conn=conn,
        )

    def _missed_runs(
        self, workflow_id: int, now: datetime
    ) -> list[tuple[int, str, datetime, datetime | None]]:
        """Each producer whose next run passed while paused, and its next slot after `now`.

        Interval producers stay on their grid (anchored on the missed next run); cron ignores
        the anchor. Applied in the transaction only where the next run is still the one read
        here: a run that committed meanwhile has set a newer one.
        """
        moves: list[tuple[int, str, datetime, datetime | None]] = []
        for row in self.schedules.list(workflow_id):
            if row.next_run_at is None or row.next_run_at >= now:  # manual: never due
                continue
            schedule = schedule_from_row(row.schedule_type, row.schedule_value, row.timezone)
            next_run = schedule.next_after(now, anchor=row.next_run_at)
            moves.append((row.id, row.producer_name, row.next_run_at, next_run))
        return moves


def validate_definition(data: object, max_timeout: timedelta | None) -> WorkflowDefinition:
    """The same checks as `drumline validate` (one parse function, the same bounds), with the
    workers' own timeout limit."""
    try:
        return parse_definition(
            data, source=SOURCE, known_producers=registered_names(), max_timeout=max_timeout
        )
    except DefinitionError as error:
        raise invalid_definition(data, error) from None


def invalid_definition(data: object, error: DefinitionError) -> InvalidDefinitionError:
    """One line for people (the first problem and a count), every problem in `details`."""
    name = data.get("name") if isinstance(data, dict) else None
    if not isinstance(name, str):
        name = None
    label = "(unnamed)" if name is None else repr(name[:80])
    first = error.problems[0]
    message = f"workflow {label}: invalid definition: {first.path or '(top level)'}: "
    message += " ".join(first.message.split())
    if len(error.problems) > 1:
        message += f" (and {len(error.problems) - 1} more)"
    logger.warning("%s", message)
    return InvalidDefinitionError(message, {"workflow": name, **error.to_json()})


def _conflict(name: str, read_version: int | None) -> VersionConflictError:
    what = "was created" if read_version is None else f"changed from version {read_version}"
    message = f"workflow {name!r} {what} by another change meanwhile; nothing was written; retry"
    logger.warning("%s", message)
    return VersionConflictError(message, {"workflow": name, "read_version": read_version})


def _next_runs(
    producers: Mapping[str, ProducerDefinition], now: datetime
) -> dict[str, datetime | None]:
    """Each producer's first run after `now` (None: manual-only, or a cron that never fires).

    Computed for every producer, changed or not, before the transaction opens: the version
    fence makes a definition that changed meanwhile roll back, so these stay right.
    """
    next_runs: dict[str, datetime | None] = {}
    for name, producer in producers.items():
        schedule = producer.schedule
        next_runs[name] = schedule.next_after(now) if schedule else None
    return next_runs


def _spec(
    workflow_id: int,
    paused: bool,
    name: str,
    producer: ProducerDefinition,
    next_run_at: datetime | None,
) -> ScheduleSpec:
    """The row a producer's definition calls for; no schedule means manual-only (never due)."""
    schedule = producer.schedule or ManualSchedule()
    return ScheduleSpec(
        workflow_id=workflow_id,
        producer_name=name,
        run=producer.run,
        params=producer.params,
        timeout_seconds=producer.timeout_seconds,
        schedule_type=schedule.kind,
        schedule_value=schedule.value,
        timezone=schedule.timezone,
        next_run_at=next_run_at,
        paused=paused,
        policy=producer.slot_policy.to_json(),
    )


def _names(rows: Sequence[ScheduleRecord]) -> list[str]:
    return sorted(row.producer_name for row in rows)


def _summary(
    workflow: WorkflowRecord,
    changes: ProducerChanges,
    *,
    noop: bool,
    status: WorkflowStatus | None = None,
    rescheduled: tuple[str, ...] | None = None,
    deleted: bool = False,
) -> ChangeSummary:
    """The summary of a change, as `workflow` stands after it."""
    return ChangeSummary(
        workflow.name, workflow.version, changes, noop, status, rescheduled, deleted
    )

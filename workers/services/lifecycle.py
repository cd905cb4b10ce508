"""Workflow lifecycle: deploy (create or update), pause, resume, delete.

Every change runs the same way:

1. validate first: an invalid definition raises `InvalidDefinitionError` and writes nothing;
2. take the workflow's Redis lock, so concurrent changes queue instead of colliding;
3. read the workflow and its version;
4. in ONE database transaction, re-check that version with the stores' fenced writes and apply the
   change. The lock may have expired under a slow change, so the version check is what really
   keeps two changes from interleaving: if it moved, the transaction rolls back and
   `VersionConflictError` says so.

No Celery here: the tasks in `workers/tasks/lifecycle_tasks.py` wire this to the app's settings.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine

from models.definitions import (
    ProducerDefinition,
    WorkflowDefinition,
    parse_definition,
)
from models.errors import (
    DefinitionError,
    InvalidDefinitionError,
    VersionConflictError,
    WorkflowNotFoundError,
)
from models.records import JSONDict, ScheduleRecord, ScheduleSpec, WorkflowRecord
from models.schedule_store import ProducerScheduleStore
from models.schedules import ManualSchedule, schedule_from_row
from models.types import utc_now
from models.vocabulary import WorkflowStatus
from models.workflow_store import WorkflowStore
from workers.registry import registered_names
from workers.services.locks import WorkflowLocks

logger = logging.getLogger("drumline.lifecycle")

# Where problems say they are: a definition sent to the workers has no file name.
SOURCE = "<definition>"


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


class Lifecycle:
    """The four lifecycle changes against one database, with one lock service and clock."""

    def __init__(
        self,
        engine: Engine,
        locks: WorkflowLocks,
        *,
        now: Callable[[], datetime] = utc_now,
        max_timeout: timedelta | None = None,
    ) -> None:
        self.engine = engine
        self.max_timeout = max_timeout
        self.locks = locks
        self.now = now
        self.workflows = WorkflowStore(engine)
        self.schedules = ProducerScheduleStore(engine)

    def deploy(self, data: object) -> ChangeSummary:
        """Create the workflow or bring it to `data`, touching only the producers that changed.

        A producer whose schedule changed gets a fresh next run and loses any claim (a run in
        flight is superseded); one whose config alone changed keeps its next run, claim and
        state. Redeploying the stored definition writes nothing and reports `noop`.
        """
        definition = _validate(data, self.max_timeout)
        stored = definition.model_dump(mode="json")
        with self.locks.hold(definition.name):
            current = self.workflows.get(definition.name)
            if current is not None and current.definition == stored:
                logger.info("workflow %r v%d redeployed unchanged", current.name, current.version)
                changes = ProducerChanges(unchanged=list(definition.producers))
                return _summary(current, changes, noop=True)
            now = self.now()
            # Schedule math before the transaction, never inside it (SQLite's write lock).
            next_runs = _next_runs(definition.producers, now)
            with self.engine.begin() as conn:
                record = self._write_definition(definition.name, current, stored, now, conn)
                changes = self._apply_producers(record, definition.producers, next_runs, now, conn)
        logger.info(
            "deployed workflow %r v%d: added %s; changed %s; removed %s; unchanged %s",
            record.name,
            record.version,
            *changes.as_dict().values(),
        )
        return _summary(record, changes, noop=False)

    def pause(self, name: str, *, by: str | None = None, note: str | None = None) -> ChangeSummary:
        """Stop the workflow's producers from becoming due; runs in flight finish normally.
        Each producer records when, `by` whom and why (`note`) it was paused.

        Messages already queued are not run: the worker's start step sees `paused` on the row
        and records the slot skipped (models.run_path)."""
        return self._set_status(name, WorkflowStatus.PAUSED, by=by, note=note)

    def resume(self, name: str) -> ChangeSummary:
        """Let the producers run again, from their next slot after now: no burst of missed runs.

        The summary's `rescheduled` lists the producers whose next run passed while paused.
        """
        return self._set_status(name, WorkflowStatus.ACTIVE)

    def delete(self, name: str) -> ChangeSummary:
        """Delete the workflow; its schedules and run history go with it (ON DELETE CASCADE)."""
        with self.locks.hold(name):
            current = self._require(name)
            with self.engine.begin() as conn:
                producers = _names(self.schedules.list(current.id, conn=conn))
                if not self.workflows.delete_fenced(current.id, current.version, conn=conn):
                    raise _conflict(name, current.version)
        logger.info(
            "deleted workflow %r (v%d) and its producers %s", name, current.version, producers
        )
        return _summary(current, ProducerChanges(removed=producers), noop=False, deleted=True)

    def _set_status(
        self,
        name: str,
        status: WorkflowStatus,
        *,
        by: str | None = None,
        note: str | None = None,
    ) -> ChangeSummary:
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
                self.schedules.set_paused(
                    record.id, paused, now=now, by=by or "drumline pause", note=note, conn=conn
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

    def _write_definition(
        self,
        name: str,
        current: WorkflowRecord | None,
        stored: JSONDict,
        now: datetime,
        conn: Connection,
    ) -> WorkflowRecord:
        """Create or update the workflow row, fenced on the version read before."""
        if current is None:
            record = self.workflows.create(name, stored, now=now, conn=conn)
        else:
            record = self.workflows.update_fenced(
                current.id, current.version, now=now, definition=stored, conn=conn
            )
        if record is None:
            raise _conflict(name, current.version if current else None)
        return record

    def _apply_producers(
        self,
        workflow: WorkflowRecord,
        producers: Mapping[str, ProducerDefinition],
        next_runs: Mapping[str, datetime | None],
        now: datetime,
        conn: Connection,
    ) -> ProducerChanges:
        rows = {row.producer_name: row for row in self.schedules.list(workflow.id, conn=conn)}
        changes = ProducerChanges()
        for name, producer in producers.items():
            spec = _spec(workflow, name, producer, next_runs[name])
            row = rows.get(name)
            if row is None or _schedule_of(row) != _schedule_of(spec):
                self.schedules.upsert(spec, now=now, conn=conn)
                (changes.added if row is None else changes.changed).append(name)
            elif _config_of(row) != _config_of(spec):
                self.schedules.update_config(
                    workflow.id,
                    name,
                    run=spec.run,
                    params=spec.params,
                    timeout_seconds=spec.timeout_seconds,
                    policy=spec.policy,
                    now=now,
                    conn=conn,
                )
                changes.changed.append(name)
            else:
                changes.unchanged.append(name)
        for name in rows.keys() - producers.keys():
            self.schedules.delete(workflow.id, name, conn=conn)
            changes.removed.append(name)
        return changes

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


def _validate(data: object, max_timeout: timedelta | None) -> WorkflowDefinition:
    """The same checks as `drumline validate` (one parse function, the same bounds), with the
    workers' own timeout limit."""
    try:
        return parse_definition(
            data, source=SOURCE, known_producers=registered_names(), max_timeout=max_timeout
        )
    except DefinitionError as error:
        raise _invalid(data, error) from None


def _invalid(data: object, error: DefinitionError) -> InvalidDefinitionError:
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
    workflow: WorkflowRecord,
    name: str,
    producer: ProducerDefinition,
    next_run_at: datetime | None,
) -> ScheduleSpec:
    """The row a producer's definition calls for; no schedule means manual-only (never due)."""
    schedule = producer.schedule or ManualSchedule()
    return ScheduleSpec(
        workflow_id=workflow.id,
        producer_name=name,
        run=producer.run,
        params=producer.params,
        timeout_seconds=producer.timeout_seconds,
        schedule_type=schedule.kind,
        schedule_value=schedule.value,
        timezone=schedule.timezone,
        next_run_at=next_run_at,
        paused=workflow.status == WorkflowStatus.PAUSED,
        policy=producer.slot_policy.to_json(),
    )


def _schedule_of(row: ScheduleRecord | ScheduleSpec) -> tuple[str, str, str]:
    return (row.schedule_type, row.schedule_value, row.timezone)


def _config_of(
    row: ScheduleRecord | ScheduleSpec,
) -> tuple[str, JSONDict, float | None, JSONDict]:
    return (row.run, row.params, row.timeout_seconds, row.policy)


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

"""Reads and writes of `workflow_changes`: the history of every lifecycle change.

An entry is written in the same transaction as the change it records, so history and state
never disagree: a refused or rolled-back change leaves no entry. A workflow-wide change is a
new version of the workflow; a change to one producer (paused or resumed by hand, or paused by
`pause_after_failures`) names the producer and keeps the version it applied to. The newest
`keep` entries of each workflow (by id) are kept; older ones are deleted by the write that goes
past the limit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, Row, delete, func, literal, select

from models.errors import InvalidAuthorError
from models.records import JSONDict
from models.tables import producer_schedules, workflow_changes, workflows
from models.transactions import bind, transaction
from models.vocabulary import ChangeAction

_c = workflow_changes.c
_s = producer_schedules.c
_w = workflows.c

MAX_ACTOR_CHARS = 200
MAX_NOTE_CHARS = 2000
# The largest version a rollback or diff may name (the column is a 32-bit integer).
MAX_VERSION = 2**31 - 1
# The actions whose entry holds a new definition (the others keep the one before).
DEFINITION_CHANGES = (ChangeAction.DEPLOY.value, ChangeAction.ROLLBACK.value)
# History entries kept per workflow unless the caller says otherwise.
DEFAULT_HISTORY_KEPT = 100


@dataclass(frozen=True)
class ChangeAuthor:
    """Who made a change and why: `actor` (`user@host` by default) and an optional note."""

    actor: str
    note: str | None = None

    def __post_init__(self) -> None:
        problem = author_problem(self.actor, self.note)
        if problem is not None:
            raise InvalidAuthorError(problem)


def author_problem(actor: str, note: str | None) -> str | None:
    """Why `actor` or `note` cannot be recorded, naming the field; None if both can."""
    if not actor or len(actor) > MAX_ACTOR_CHARS or not actor.isprintable():
        return f"actor must be 1 to {MAX_ACTOR_CHARS} printable characters"
    if note is not None and (len(note) > MAX_NOTE_CHARS or "\x00" in note):
        return f"note must be at most {MAX_NOTE_CHARS} characters, without NUL"
    return None


@dataclass(frozen=True)
class ChangeRecord:
    id: int
    workflow: str
    version: int
    action: ChangeAction
    # The producer a producer entry is about; None for a change to the whole workflow.
    producer: str | None
    definition: JSONDict
    diff: JSONDict
    actor: str
    note: str | None
    changed_at: datetime


class ChangeStore:
    """History entries: one per workflow-wide change (a version), and one per producer change."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def record(
        self,
        *,
        workflow: str,
        version: int,
        action: ChangeAction,
        definition: JSONDict,
        diff: JSONDict,
        author: ChangeAuthor,
        now: datetime,
        keep: int,
        conn: Connection,
        producer: str | None = None,
    ) -> None:
        """Add the entry (about `producer`, if given), in the caller's transaction; drop the
        workflow's entries older than its newest `keep`."""
        conn.execute(
            workflow_changes.insert().values(
                workflow=workflow,
                version=version,
                producer=producer,
                action=action,
                definition=definition,
                diff=diff,
                actor=author.actor,
                note=author.note,
                changed_at=now,
            )
        )
        keep_newest(conn, workflow, keep)

    def latest_version(self, workflow: str, conn: Connection | None = None) -> int:
        """The newest recorded version of the name (0 if it has no history)."""
        with transaction(self.engine, conn) as c:
            latest = c.execute(
                select(func.max(_c.version)).where(_c.workflow == workflow)
            ).scalar_one()
        return int(latest or 0)

    def list(self, workflow: str, limit: int) -> list[ChangeRecord]:
        """The workflow's newest `limit` entries, newest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(workflow_changes)
                .where(_c.workflow == workflow)
                .order_by(_c.id.desc())
                .limit(limit)
            ).all()
        return [_record(row) for row in rows]

    def get(self, workflow: str, version: int) -> ChangeRecord | None:
        """The workflow-wide entry of `version` (producer entries share versions)."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(workflow_changes).where(
                    _c.workflow == workflow, _c.version == version, _c.producer.is_(None)
                )
            ).first()
        return _record(row) if row else None

    def newest_definition_change(
        self, workflow: str, *, before: int | None = None
    ) -> ChangeRecord | None:
        """The newest deploy or rollback (of a version below `before`, if given): what
        `drumline diff` compares by default, skipping entries that changed no definition."""
        query = select(workflow_changes).where(
            _c.workflow == workflow, _c.action.in_(DEFINITION_CHANGES)
        )
        if before is not None:
            query = query.where(_c.version < before)
        with self.engine.connect() as conn:
            row = conn.execute(query.order_by(_c.version.desc()).limit(1)).first()
        return _record(row) if row else None


def keep_newest(conn: Connection, workflow: str, keep: int) -> None:
    """Delete the workflow's entries older than its newest `keep` (none if it has fewer)."""
    oldest_kept = (
        select(_c.id)
        .where(_c.workflow == workflow)
        .order_by(_c.id.desc())
        .limit(1)
        .offset(keep - 1)
        .scalar_subquery()
    )
    conn.execute(delete(workflow_changes).where(_c.workflow == workflow, _c.id < oldest_kept))


AUTO_PAUSE_ACTOR = "auto-pause"
AUTO_PAUSE_DIFF: JSONDict = {"status": {"old": "active", "new": "paused"}}

# The auto-pause entry of one producer row, if the statement that just finished its slot (at
# `b_now`) paused it: the producer's pause note says how many failures and the last error.
_RECORD_AUTO_PAUSE = (
    workflow_changes.insert()
    .from_select(
        [
            "workflow",
            "version",
            "producer",
            "action",
            "definition",
            "diff",
            "actor",
            "note",
            "changed_at",
        ],
        select(
            _w.name,
            _w.version,
            _s.producer_name,
            literal(ChangeAction.AUTO_PAUSE.value),
            _w.definition,
            literal(AUTO_PAUSE_DIFF, workflow_changes.c.diff.type),
            literal(AUTO_PAUSE_ACTOR),
            _s.pause_note,
            _s.paused_at,
        )
        .select_from(producer_schedules.join(workflows, _w.id == _s.workflow_id))
        .where(
            _s.id == bind("b_id", _s.id),
            _s.paused,
            _s.paused_by == AUTO_PAUSE_ACTOR,
            _s.paused_at == bind("b_now", _s.paused_at),
        ),
    )
    .returning(_c.workflow)
)


def record_auto_pause(conn: Connection, schedule_id: int, *, now: datetime, keep: int) -> None:
    """Record the auto-pause of the producer row `schedule_id`, in the transaction of the slot
    commit that paused it at `now` (nothing if that commit did not)."""
    params = {"b_id": schedule_id, "b_now": now}
    workflow = conn.execute(_RECORD_AUTO_PAUSE, params).scalar_one_or_none()
    if workflow is not None:
        keep_newest(conn, workflow, keep)


def _record(row: Row[Any]) -> ChangeRecord:
    values = row._asdict()
    return ChangeRecord(**{**values, "action": ChangeAction(values["action"])})

"""Reads and writes of `workflow_changes`: the history of every lifecycle change.

An entry is written in the same transaction as the change it records, so history and state
never disagree: a refused or rolled-back change leaves no entry. The newest `keep` entries of
each workflow are kept; older ones are deleted by the write that goes past the limit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, Row, delete, func, select

from models.errors import InvalidAuthorError
from models.records import JSONDict
from models.tables import workflow_changes
from models.transactions import transaction
from models.vocabulary import ChangeAction

_c = workflow_changes.c

MAX_ACTOR_CHARS = 200
MAX_NOTE_CHARS = 2000
# The largest version a rollback or diff may name (the column is a 32-bit integer).
MAX_VERSION = 2**31 - 1


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
    definition: JSONDict
    diff: JSONDict
    actor: str
    note: str | None
    changed_at: datetime


class ChangeStore:
    """History entries, one per (workflow name, version)."""

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
    ) -> None:
        """Add the entry for `version`, in the caller's transaction; drop entries of the
        workflow older than its newest `keep`."""
        conn.execute(
            workflow_changes.insert().values(
                workflow=workflow,
                version=version,
                action=action,
                definition=definition,
                diff=diff,
                actor=author.actor,
                note=author.note,
                changed_at=now,
            )
        )
        conn.execute(
            delete(workflow_changes).where(_c.workflow == workflow, _c.version <= version - keep)
        )

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
                .order_by(_c.version.desc())
                .limit(limit)
            ).all()
        return [_record(row) for row in rows]

    def get(self, workflow: str, version: int) -> ChangeRecord | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(workflow_changes).where(_c.workflow == workflow, _c.version == version)
            ).first()
        return _record(row) if row else None


def _record(row: Row[Any]) -> ChangeRecord:
    values = row._asdict()
    return ChangeRecord(**{**values, "action": ChangeAction(values["action"])})

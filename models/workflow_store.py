"""Reads and writes of the `workflows` table."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, Row, delete, select, update

from models.records import JSONDict, WorkflowRecord
from models.tables import workflows
from models.transactions import insert_for, transaction
from models.vocabulary import WorkflowStatus


class WorkflowStore:
    """Workflow rows. `version` is bumped by every change and doubles as a fencing token."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def get(self, name: str, conn: Connection | None = None) -> WorkflowRecord | None:
        with transaction(self.engine, conn) as c:
            row = c.execute(select(workflows).where(workflows.c.name == name)).first()
        return _record(row) if row else None

    def list(self, conn: Connection | None = None) -> list[WorkflowRecord]:
        with transaction(self.engine, conn) as c:
            rows = c.execute(select(workflows).order_by(workflows.c.name)).all()
        return [_record(row) for row in rows]

    def create(
        self,
        name: str,
        definition: JSONDict,
        *,
        now: datetime,
        version: int = 1,
        conn: Connection | None = None,
    ) -> WorkflowRecord | None:
        """Insert a new workflow at `version` (1, or past the history of a deleted one of the
        same name); None if the name was taken meanwhile."""
        with transaction(self.engine, conn) as c:
            stmt = (
                insert_for(c, workflows)
                .values(
                    name=name,
                    status=WorkflowStatus.ACTIVE,
                    version=version,
                    definition=definition,
                    created_at=now,
                    updated_at=now,
                )
                .on_conflict_do_nothing(index_elements=[workflows.c.name])
                .returning(*workflows.c)
            )
            row = c.execute(stmt).first()
        return _record(row) if row else None

    def update_fenced(
        self,
        workflow_id: int,
        expected_version: int,
        *,
        now: datetime,
        definition: JSONDict | None = None,
        status: str | None = None,
        conn: Connection | None = None,
    ) -> WorkflowRecord | None:
        """Apply a change only if the version is still `expected_version`; None if it moved."""
        values: dict[str, Any] = {"version": workflows.c.version + 1, "updated_at": now}
        if definition is not None:
            values["definition"] = definition
        if status is not None:
            values["status"] = status
        with transaction(self.engine, conn) as c:
            row = c.execute(
                update(workflows)
                .where(workflows.c.id == workflow_id, workflows.c.version == expected_version)
                .values(**values)
                .returning(*workflows.c)
            ).first()
        return _record(row) if row else None

    def delete_fenced(
        self, workflow_id: int, expected_version: int, conn: Connection | None = None
    ) -> bool:
        """Delete only if nobody changed the workflow since `expected_version` was read."""
        with transaction(self.engine, conn) as c:
            result = c.execute(
                delete(workflows).where(
                    workflows.c.id == workflow_id, workflows.c.version == expected_version
                )
            )
        return result.rowcount > 0


def _record(row: Row[Any]) -> WorkflowRecord:
    return WorkflowRecord(**row._asdict())

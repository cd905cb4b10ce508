"""Beat's SQL for trigger requests that fall due: `drumline trigger --at` records them ahead.

A request is a `pending` run row with its token (migration 0002). One whose slot has come and
that no beat has sent since (`started_at` still before the slot), or whose sending is older than
the lease (its message was lost or expired), is claimed by setting `started_at` to now, in one
statement, so several beats send it once per lease; the worker's token check runs it once.

A backfill's request (`drumline backfill`, models/backfill_store.py) is for a past slot, so its
slot alone never holds it back: it is recorded with `started_at` a lease before the time it may
be sent, and so goes out then, at the backfill's rate, like a request whose sending has expired.
A backfill's run still `running` a lease after it started lost its worker (a run's hard limit is
inside the lease): it is made pending again under a new attempt and sent again, as a scheduled
slot cut short is, so a backfill finishes whatever worker dies.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    Integer,
    Update,
    bindparam,
    exists,
    literal,
    or_,
    select,
    text,
    update,
)

from models.tables import RUNNING_BACKFILL, producer_runs, workflows
from models.transactions import bind, transaction
from models.vocabulary import RunStatus, Trigger

_r = producer_runs.c


@dataclass(frozen=True)
class DueTrigger:
    """A trigger request one beat has claimed and must now send."""

    workflow_id: int
    workflow_name: str
    producer_name: str
    scheduled_for: datetime
    trigger_token: str
    claimed_until: datetime


class TriggerClaims:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def claim_due(
        self, *, now: datetime, lease: timedelta, limit: int, conn: Connection | None = None
    ) -> list[DueTrigger]:
        """Claim up to `limit` due trigger requests, oldest first.

        A read first: requests are rare, and on SQLite an UPDATE takes the write lock even when
        it matches nothing, which every tick of every beat would otherwise do."""
        params = {"b_now": now, "b_stale": now - lease, "b_limit": limit}
        if conn is None:
            with self.engine.connect() as reader:
                if reader.execute(_ANY_DUE, params).first() is None:
                    return []
        with transaction(self.engine, conn) as c:
            rows = [
                *c.execute(_claim_statement(c.dialect.name, stale=True), params),
                *c.execute(_claim_statement(c.dialect.name, stale=False), params),
            ]
        return sorted(
            (
                DueTrigger(
                    workflow_id=row.workflow_id,
                    workflow_name=row.workflow_name,
                    producer_name=row.producer_name,
                    scheduled_for=row.scheduled_for,
                    trigger_token=row.trigger_token,
                    claimed_until=now + lease,
                )
                for row in rows
            ),
            key=lambda due: due.scheduled_for,
        )


_NOW = bind("b_now", _r.started_at)
# Pending, its time come, and never sent since (or sent longer than a lease ago).
_DUE = select(_r.id).where(
    _r.status == RunStatus.PENDING.value,
    _r.trigger.in_([Trigger.MANUAL.value, Trigger.BACKFILL.value]),
    _r.trigger_token.is_not(None),
    _r.scheduled_for <= _NOW,
    ((_r.trigger == Trigger.MANUAL.value) & (_r.started_at < _r.scheduled_for))
    | (_r.started_at <= bind("b_stale", _r.started_at)),
)
# A backfill's run whose worker died: still running a lease after it started. The predicate is
# the partial index's own text, so that SQLite reads that index (a handful of rows in flight).
_STALE = select(_r.id).where(
    text(RUNNING_BACKFILL), _r.started_at <= bind("b_stale", _r.started_at)
)
_ANY_DUE = select(literal(1)).where(or_(exists(_DUE), exists(_STALE)))


@cache
def _claim_statement(dialect: str, *, stale: bool) -> Update:
    """Claim due requests; or, `stale`, make dead backfill runs pending again (a new attempt,
    so a late commit of the lost one is fenced off) and claim them."""
    due = (_STALE if stale else _DUE).order_by(_r.scheduled_for)
    due = due.limit(bindparam("b_limit", type_=Integer()))
    if dialect == "postgresql":
        due = due.with_for_update(skip_locked=True)
    workflow_name = (
        select(workflows.c.name).where(workflows.c.id == _r.workflow_id).scalar_subquery()
    )
    values: dict[str, Any] = {"started_at": _NOW}
    if stale:
        values |= {"status": RunStatus.PENDING.value, "attempt": _r.attempt + 1}
    return (
        update(producer_runs)
        .where(_r.id.in_(due.scalar_subquery()))
        .values(values)
        .returning(
            _r.workflow_id,
            _r.producer_name,
            _r.scheduled_for,
            _r.trigger_token,
            workflow_name.label("workflow_name"),
        )
    )

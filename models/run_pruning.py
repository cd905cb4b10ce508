"""Retention of `producer_runs`: delete finished runs that are too old, or older than the newest
N of their producer, a few hundred rows per statement, each statement its own transaction.

Every statement walks the UNIQUE(workflow_id, producer_name, scheduled_for) index of one
producer, so no statement reads the whole table or sorts it, and none holds a lock for long:
- producers are visited in index order, one index seek each (a loose index scan), from a
  position the caller keeps between passes, so a pass cut short by its limits resumes there;
- "older than the newest N" is `scheduled_for <` the N-th newest slot, found by stepping N
  entries down the producer's index (`ORDER BY scheduled_for DESC OFFSET N - 1`).

Only final rows are deleted (a final status, and a recorded finish): a `running` row, or any
row whose run has not been finished, stays whatever its age. Deleting is idempotent, so any
number of pruners may run at once; on PostgreSQL each skips the rows another is deleting
(`FOR UPDATE SKIP LOCKED`) instead of waiting for them, and on SQLite the write lock, taken by
one short statement at a time, orders them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any, NamedTuple

from sqlalchemy import Delete, Engine, Integer, Select, bindparam, delete, select, tuple_

from models.run_store import TERMINAL_STATUSES
from models.tables import producer_runs
from models.transactions import bind

_r = producer_runs.c


@dataclass(frozen=True)
class Retention:
    """What run history to keep; None switches a rule off."""

    max_age: timedelta | None
    keep_per_producer: int | None

    @property
    def prunes(self) -> bool:
        return self.max_age is not None or self.keep_per_producer is not None


@dataclass(frozen=True)
class PruneLimits:
    """The bounds of one pass: rows per statement, rows in all, and time.

    The time budget is checked after each statement, so a pass always makes progress.
    """

    batch: int
    max_rows: int
    budget: timedelta


class ProducerKey(NamedTuple):
    workflow_id: int
    producer_name: str


@dataclass(frozen=True)
class PruneReport:
    by_age: int
    by_count: int
    producers: int
    # Where the next pass starts: the producer this one stopped at, or None if it reached the
    # last producer (the next pass then starts from the first).
    resume_at: ProducerKey | None
    seconds: float

    @property
    def more(self) -> bool:
        """The pass stopped on its limits, so more rows may be due for pruning."""
        return self.resume_at is not None


class RunPruner:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def prune(
        self,
        *,
        now: datetime,
        retention: Retention,
        limits: PruneLimits,
        start_at: ProducerKey | None = None,
    ) -> PruneReport:
        """One bounded pass over the producers from `start_at` (default: the first)."""
        started = time.monotonic()
        deleted = {"age": 0, "count": 0}
        visited = 0

        def report(resume_at: ProducerKey | None) -> PruneReport:
            seconds = time.monotonic() - started
            return PruneReport(deleted["age"], deleted["count"], visited, resume_at, seconds)

        if not retention.prunes:
            return report(None)
        rules: list[tuple[str, Delete, dict[str, Any]]] = []
        if retention.max_age is not None:
            rules.append(
                ("age", _delete_older_than(self._dialect), {"b_before": now - retention.max_age})
            )
        if retention.keep_per_producer is not None:
            rules.append(
                (
                    "count",
                    _delete_beyond_newest(self._dialect),
                    {"b_offset": retention.keep_per_producer - 1},
                )
            )
        producer = self._producer(_FIRST_PRODUCER_FROM, start_at or _BEFORE_EVERY_PRODUCER)
        while producer is not None:
            visited += 1
            for rule, statement, params in rules:
                while True:
                    limit = min(limits.batch, limits.max_rows - deleted["age"] - deleted["count"])
                    with self.engine.begin() as conn:
                        rows = conn.execute(
                            statement, {**params, **_producer_params(producer), "b_limit": limit}
                        ).rowcount
                    deleted[rule] += rows
                    spent = timedelta(seconds=time.monotonic() - started)
                    if (
                        deleted["age"] + deleted["count"] >= limits.max_rows
                        or spent >= limits.budget
                    ):
                        return report(producer)
                    if rows < limit:
                        break
            producer = self._producer(_PRODUCER_AFTER, producer)
        return report(None)

    @property
    def _dialect(self) -> str:
        return self.engine.dialect.name

    def _producer(self, statement: Select[Any], key: ProducerKey) -> ProducerKey | None:
        with self.engine.begin() as conn:
            row = conn.execute(statement, _producer_params(key)).first()
        return ProducerKey(row.workflow_id, row.producer_name) if row else None


def _producer_params(key: ProducerKey) -> dict[str, Any]:
    return {"b_workflow_id": key.workflow_id, "b_producer_name": key.producer_name}


# Workflow ids start at 1, so every producer sorts after this key.
_BEFORE_EVERY_PRODUCER = ProducerKey(0, "")

_WORKFLOW_ID = bind("b_workflow_id", _r.workflow_id)
_PRODUCER_NAME = bind("b_producer_name", _r.producer_name)
_KEY = tuple_(_r.workflow_id, _r.producer_name)
_PARAM_KEY = tuple_(_WORKFLOW_ID, _PRODUCER_NAME)
_OF_PRODUCER = (_r.workflow_id == _WORKFLOW_ID) & (_r.producer_name == _PRODUCER_NAME)
# A final row: a final status, and its finish recorded. Anything else may still be written.
_FINAL = _r.status.in_(sorted(TERMINAL_STATUSES)) & _r.finished_at.is_not(None)
_LIMIT = bindparam("b_limit", type_=Integer())


def _next_producer(condition: Any) -> Select[Any]:
    """The first producer with runs whose key meets `condition`: one seek into the index."""
    return (
        select(_r.workflow_id, _r.producer_name)
        .where(condition)
        .order_by(_r.workflow_id, _r.producer_name)
        .limit(1)
    )


_FIRST_PRODUCER_FROM = _next_producer(_KEY >= _PARAM_KEY)
_PRODUCER_AFTER = _next_producer(_KEY > _PARAM_KEY)


def _delete_final_before(dialect: str, before: Any) -> Delete:
    """Delete the `b_limit` oldest final runs of one producer scheduled before `before`."""
    oldest = (
        select(_r.id)
        .where(_OF_PRODUCER, _r.scheduled_for < before, _FINAL)
        .order_by(_r.scheduled_for)
        .limit(_LIMIT)
    )
    if dialect == "postgresql":
        oldest = oldest.with_for_update(skip_locked=True)
    return delete(producer_runs).where(_r.id.in_(oldest.scalar_subquery()))


@cache
def _delete_older_than(dialect: str) -> Delete:
    """Runs scheduled before `b_before`."""
    return _delete_final_before(dialect, bind("b_before", _r.scheduled_for))


@cache
def _delete_beyond_newest(dialect: str) -> Delete:
    """Runs older than the producer's newest `b_offset + 1`: before the slot that many entries
    down its index. A producer with fewer runs has no such slot, and the comparison with NULL
    deletes nothing."""
    nth_newest = (
        select(_r.scheduled_for)
        .where(_OF_PRODUCER)
        .order_by(_r.scheduled_for.desc())
        .limit(1)
        .offset(bindparam("b_offset", type_=Integer()))
        .scalar_subquery()
    )
    return _delete_final_before(dialect, nth_newest)

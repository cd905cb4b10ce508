"""Retention of `producer_runs`: delete finished runs that are too old, or older than the newest
N of their producer, a few hundred rows per statement, in short transactions.

Every statement walks the UNIQUE(workflow_id, producer_name, scheduled_for) index of one
producer, so no statement reads the whole table or sorts it, and none holds a lock for long:
- producers are visited in index order, one index seek each (a loose index scan), from a
  position the caller keeps between passes, so a pass cut short by its limits resumes there;
- "older than the newest N" is `scheduled_for <` the N-th newest slot, found by stepping N
  entries down the producer's index (`ORDER BY scheduled_for DESC OFFSET N - 1`);
- one DELETE applies both rules (before the later of the two bounds) and returns the slots it
  deleted, which tell which rule took each.

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

from sqlalchemy import (
    Connection,
    Engine,
    Integer,
    Select,
    bindparam,
    case,
    delete,
    literal_column,
    select,
    tuple_,
)
from sqlalchemy.sql.dml import ReturningDelete

from models.run_store import TERMINAL_STATUSES
from models.tables import producer_runs, slot_outcomes
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

    def __post_init__(self) -> None:
        if self.batch < 1 or self.max_rows < 1:
            raise ValueError(f"a prune pass needs a batch and a row limit of at least 1: {self}")


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
        """One bounded pass over the producers from `start_at` (default: the first).

        One short transaction per producer finds it (an index seek) and deletes its first
        batch; a producer with more to delete than a batch gets one transaction per batch.
        """
        tally = _Tally(retention, limits, now)
        if not retention.prunes:
            return tally.report(None)
        statement = _delete_statement(
            self.engine.dialect.name,
            by_age=retention.max_age is not None,
            by_count=retention.keep_per_producer is not None,
        )
        find, key = _FIRST_PRODUCER_FROM, start_at or _BEFORE_EVERY_PRODUCER
        while True:
            with self.engine.begin() as conn:
                found = conn.execute(find, _producer_params(key)).first()
                if found is None:
                    return tally.report(None)
                key = ProducerKey(found.workflow_id, found.producer_name)
                full = tally.delete_batch(conn, statement, key)
            tally.visited += 1
            while full and not tally.exhausted():
                with self.engine.begin() as conn:
                    full = tally.delete_batch(conn, statement, key)
            if tally.exhausted():
                return tally.report(key)
            find = _PRODUCER_AFTER


class _Tally:
    """One pass's counts, limits and statement parameters."""

    def __init__(self, retention: Retention, limits: PruneLimits, now: datetime) -> None:
        self.limits = limits
        self.started = time.monotonic()
        self.age_before = None if retention.max_age is None else now - retention.max_age
        self.params: dict[str, Any] = {"b_before": self.age_before}
        if retention.keep_per_producer is not None:
            self.params["b_offset"] = retention.keep_per_producer - 1
        self.by_age = self.by_count = self.visited = 0

    def delete_batch(
        self, conn: Connection, statement: ReturningDelete[Any], key: ProducerKey
    ) -> bool:
        """Delete one batch of `key`'s runs; True if it was full, so more may be due."""
        limit = min(self.limits.batch, self.limits.max_rows - self.by_age - self.by_count)
        params = {**self.params, **_producer_params(key), "b_limit": limit}
        slots = conn.execute(statement, params).scalars().all()
        if slots:
            # The slot ledger goes with the history: outcomes up to the newest pruned run.
            conn.execute(_PRUNE_LEDGER, {**_producer_params(key), "b_through": max(slots)})
        # A slot older than the age limit went by age, whatever its rank.
        aged = sum(1 for slot in slots if self.age_before is not None and slot < self.age_before)
        self.by_age += aged
        self.by_count += len(slots) - aged
        return len(slots) == limit

    def exhausted(self) -> bool:
        elapsed = timedelta(seconds=time.monotonic() - self.started)
        return self.by_age + self.by_count >= self.limits.max_rows or elapsed >= self.limits.budget

    def report(self, resume_at: ProducerKey | None) -> PruneReport:
        seconds = time.monotonic() - self.started
        return PruneReport(self.by_age, self.by_count, self.visited, resume_at, seconds)


_o = slot_outcomes.c
_PRUNE_LEDGER = delete(slot_outcomes).where(
    _o.workflow_id == bind("b_workflow_id", _o.workflow_id),
    _o.producer_name == bind("b_producer_name", _o.producer_name),
    _o.slot <= bind("b_through", _o.slot),
)


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
# The statuses are written into the SQL, as in the table's CHECK constraint: constants the
# planner sees, and nothing to expand per execution.
_FINAL = _r.status.in_([literal_column(f"'{status}'") for status in sorted(TERMINAL_STATUSES)]) & (
    _r.finished_at.is_not(None)
)


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


@cache
def _delete_statement(dialect: str, *, by_age: bool, by_count: bool) -> ReturningDelete[Any]:
    """Delete the `b_limit` oldest final runs of one producer that a rule condemns, returning
    their slots: those scheduled before `b_before` (by age), and those older than the
    producer's newest `b_offset + 1` (by count), that is before the slot that many entries down
    its index. A producer with fewer runs has no such slot: NULL, which condemns nothing."""
    before: Any = bind("b_before", _r.scheduled_for)
    if by_count:
        nth_newest = (
            select(_r.scheduled_for)
            .where(_OF_PRODUCER)
            .order_by(_r.scheduled_for.desc())
            .limit(1)
            .offset(bindparam("b_offset", type_=Integer()))
            .scalar_subquery()
        )
        before = case((nth_newest > before, nth_newest), else_=before) if by_age else nth_newest
    oldest = (
        select(_r.id)
        .where(_OF_PRODUCER, _r.scheduled_for < before, _FINAL)
        .order_by(_r.scheduled_for)
        .limit(bindparam("b_limit", type_=Integer()))
    )
    if dialect == "postgresql":
        oldest = oldest.with_for_update(skip_locked=True)
    return (
        delete(producer_runs).where(_r.id.in_(oldest.scalar_subquery())).returning(_r.scheduled_for)
    )

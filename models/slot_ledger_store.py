"""The slot ledger's SQL: record slot outcomes (fenced by the claim) and read them back.

Entries are written in the same transaction (on PostgreSQL, the same statement) as the commit
that moves a producer's next run past them, so each due slot gets its outcome exactly when the
schedule stops being able to run it, and two writers never cover the same slot: only the claim
holder moves the next run. A run that lost its claim records only its own slot, as superseded,
and never over an outcome already there.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import (
    Boolean,
    ColumnElement,
    Connection,
    Engine,
    bindparam,
    case,
    literal,
    select,
    true,
    union_all,
)

from models.slot_ledger import LedgerEntry
from models.tables import slot_outcomes
from models.transactions import bind, insert_for
from models.vocabulary import SlotFate

_o = slot_outcomes.c
_ENTRY_COLUMNS = (
    "slot",
    "range_end",
    "slot_count",
    "outcome",
    "reason",
    "policy",
    "attempts",
    "started_at",
    "finished_at",
)
SUPERSEDED_REASON = "the schedule was changed (redeployed) while it ran; the new schedule stands"
# The fence of the SQLite form: the caller's commit wrote the schedule (True) or not.
HELD = bindparam("b_held", type_=Boolean())


@dataclass(frozen=True)
class SlotOutcomeRecord:
    """A `slot_outcomes` row."""

    id: int
    workflow_id: int
    producer_name: str
    slot: datetime
    range_end: datetime | None
    slot_count: int | None
    outcome: str
    reason: str
    policy: str
    attempts: int
    started_at: datetime | None
    finished_at: datetime | None
    recorded_at: datetime

    def covers(self, at: datetime) -> bool:
        """Whether the instant `at` is this row's slot or lies inside its range."""
        return at == self.slot or (self.range_end is not None and self.slot <= at < self.range_end)


@cache
def record_statement(dialect: str, entries: int, held: ColumnElement[bool] = HELD) -> Any:
    """INSERT `entries` ledger rows from parameters (see `ledger_params`), upserting: an
    outcome replaces one recorded before (a paused range growing at resume), except that a
    superseded outcome never replaces anything.

    `held` is the fence: when false, the first entry (the run's own slot) is recorded as
    superseded and the others (the slots its commit would have passed) not at all.
    """
    rows: list[Any] = [_entry_select(index, held) for index in range(entries)]
    source: Any = rows[0] if entries == 1 else union_all(*rows)
    stmt = insert_for(dialect, slot_outcomes).from_select(
        ["workflow_id", "producer_name", *_ENTRY_COLUMNS, "recorded_at"], source
    )
    excluded = stmt.excluded
    return stmt.on_conflict_do_update(
        index_elements=[_o.workflow_id, _o.producer_name, _o.slot],
        set_={name: excluded[name] for name in (*_ENTRY_COLUMNS, "recorded_at")},
        where=excluded.outcome != SlotFate.SUPERSEDED.value,
    )


def _entry_select(index: int, held: ColumnElement[bool]) -> Any:
    def param(name: str) -> Any:
        return bind(f"e{index}_{name}", _o[name])

    outcome: Any = param("outcome")
    reason: Any = param("reason")
    if index == 0:
        outcome = case((held, outcome), else_=literal(SlotFate.SUPERSEDED.value))
        reason = case((held, reason), else_=literal(SUPERSEDED_REASON))
    values = {name: param(name) for name in _ENTRY_COLUMNS} | {
        "outcome": outcome,
        "reason": reason,
    }
    return select(
        bind("b_workflow_id", _o.workflow_id),
        bind("b_producer_name", _o.producer_name),
        *(values[name] for name in _ENTRY_COLUMNS),
        bind("b_now", _o.recorded_at),
    ).where(true() if index == 0 else held)


@dataclass(frozen=True)
class Ledger:
    """The ledger entries one step records for a producer (a run's own slot first)."""

    workflow_id: int
    producer_name: str
    entries: tuple[LedgerEntry, ...]

    def params(self, now: datetime) -> dict[str, Any]:
        """The parameters of `record_statement(dialect, len(self.entries))`."""
        params: dict[str, Any] = {
            "b_workflow_id": self.workflow_id,
            "b_producer_name": self.producer_name,
            "b_now": now,
        }
        for index, entry in enumerate(self.entries):
            params |= {f"e{index}_{name}": getattr(entry, name) for name in _ENTRY_COLUMNS}
        return params


def record_ledger(conn: Connection, ledger: Ledger, *, now: datetime, held: bool = True) -> None:
    """Record `ledger` on the caller's transaction (see `record_statement` for `held`)."""
    if ledger.entries:
        statement = record_statement(conn.dialect.name, len(ledger.entries))
        conn.execute(statement, ledger.params(now) | {"b_held": held})


def outcome_at(
    engine: Engine, workflow_id: int, producer_name: str, at: datetime | None
) -> SlotOutcomeRecord | None:
    """The row of the slot at or before `at` (default: the latest), for `drumline why`."""
    query = select(slot_outcomes).where(
        _o.workflow_id == workflow_id, _o.producer_name == producer_name
    )
    if at is not None:
        query = query.where(_o.slot <= at)
    with engine.connect() as conn:
        row = conn.execute(query.order_by(_o.slot.desc()).limit(1)).first()
    return None if row is None else SlotOutcomeRecord(**row._asdict())


def recent_outcomes(
    engine: Engine, workflow_id: int, producer_name: str | None, *, limit: int
) -> list[SlotOutcomeRecord]:
    """A workflow's (or one producer's) newest ledger rows, newest slot first."""
    query = select(slot_outcomes).where(_o.workflow_id == workflow_id)
    if producer_name is not None:
        query = query.where(_o.producer_name == producer_name)
    with engine.connect() as conn:
        rows = conn.execute(query.order_by(_o.slot.desc(), _o.producer_name).limit(limit)).all()
    return [SlotOutcomeRecord(**row._asdict()) for row in rows]

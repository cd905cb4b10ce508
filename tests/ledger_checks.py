"""The slot ledger's promise, checked: every due slot has exactly one outcome."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine, select

from models.schedules import Schedule
from models.slot_ledger_store import SlotOutcomeRecord
from models.tables import slot_outcomes
from models.vocabulary import SlotFate


def ledger_rows(engine: Engine, workflow_id: int, producer: str) -> list[SlotOutcomeRecord]:
    o = slot_outcomes.c
    query = (
        select(slot_outcomes)
        .where(o.workflow_id == workflow_id, o.producer_name == producer)
        .order_by(o.slot)
    )
    with engine.connect() as conn:
        return [SlotOutcomeRecord(**row._asdict()) for row in conn.execute(query)]


def coverage_problems(
    rows: list[SlotOutcomeRecord], schedule: Schedule, first: datetime, end: datetime
) -> list[str]:
    """What breaks the promise for the due slots from `first` (a slot) up to `end`: a slot
    with no outcome or with several, a row starting on an instant that is no slot, or a
    range whose count is wrong (an `excluded` range stands for no slot). Empty when the ledger
    is exact."""
    slots = []
    moment: datetime | None = first
    while moment is not None and moment < end:
        slots.append(moment)
        moment = schedule.next_after(moment, anchor=first)
    problems = []
    for slot in slots:
        covering = [row for row in rows if row.covers(slot)]
        if len(covering) != 1:
            problems.append(f"{slot.isoformat()}: {len(covering)} outcomes {covering}")
    due = set(slots)
    for row in rows:
        if row.outcome == SlotFate.EXCLUDED:
            continue  # fire times an exclusion dropped: no slots, so none of them is due
        if row.slot not in due and row.slot < end:
            problems.append(f"row at {row.slot.isoformat()} is not a due slot: {row}")
        inside = [slot for slot in slots if row.covers(slot)]
        if row.slot_count is not None and row.slot_count != len(inside) and row.slot < end:
            problems.append(f"row {row} counts {row.slot_count}, covers {len(inside)}")
    return problems

"""The slot ledger's entries: one final outcome for each slot, or for a range of slots.

A run decides the fate of its own slot and of every slot between it and the next run it
commits: those that fell due before it started were coalesced into it (the catch-up policy
`latest`), those that fell due while it ran were skipped for overlap (`overlap: skip`). One
entry stands for a whole range, so a producer due every second that was down for a day leaves
one row, not 86,400. The fire times an exclusion dropped between them are recorded `excluded`,
one range per gap between two slots.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from models.schedule_rules import RulesSchedule
from models.schedules import IntervalSchedule, Schedule
from models.vocabulary import SlotFate

# Slots of a cron range are counted by stepping through them, at most this many; a longer
# range is stored without a count (an interval's count is arithmetic, so always known).
MAX_COUNTED_SLOTS = 1000


@dataclass(frozen=True)
class LedgerEntry:
    """One row of `slot_outcomes`: the slots from `slot` up to (not including) `range_end`,
    or the one slot `slot` when `range_end` is None."""

    slot: datetime
    outcome: SlotFate
    reason: str
    policy: str
    range_end: datetime | None = None
    slot_count: int | None = 1
    attempts: int = 0
    started_at: datetime | None = None
    finished_at: datetime | None = None


def slots_between(
    schedule: Schedule,
    slot: datetime,
    next_run: datetime | None,
    *,
    started_at: datetime,
    overlap: str = "skip",
) -> list[LedgerEntry]:
    """The entries for the slots strictly between `slot` (a run's own) and `next_run` (the
    next one it commits): coalesced if they fell due by `started_at`, else skipped for
    overlap; and the fire times exclusions dropped among them, excluded. Empty when the next
    run is the very next slot and no fire time between them was excluded."""
    excluded = [] if next_run is None else excluded_between(schedule, slot, next_run)
    first = schedule.next_after(slot, anchor=slot)
    end = next_run
    if first is None or end is None or first >= end:
        return excluded
    # The first slot that fell due after the run started (`end` if none did).
    during = schedule.next_after(started_at, anchor=slot) if started_at >= first else first
    split = end if during is None else min(during, end)
    entries: list[LedgerEntry] = []
    if split > first:
        entries.append(
            ranged(
                schedule,
                first,
                split,
                outcome=SlotFate.COALESCED,
                reason=f"fell due before the late run of {slot.isoformat()} started;"
                " coalesced into it",
                policy="catchup=latest",
                anchor=slot,
            )
        )
        first = split
    if first < end:
        entries.append(
            ranged(
                schedule,
                first,
                end,
                outcome=SlotFate.SKIPPED_OVERLAP,
                reason=f"fell due while the run of {slot.isoformat()} was still running",
                policy=f"overlap={overlap}",
                anchor=slot,
            )
        )
    return sorted(entries + excluded, key=lambda entry: entry.slot)


def excluded_between(schedule: Schedule, slot: datetime, next_run: datetime) -> list[LedgerEntry]:
    """One `excluded` entry per run of fire times an exclusion dropped between `slot` and
    `next_run` (a night, a holiday: one row, however many fire times), uncounted."""
    if not isinstance(schedule, RulesSchedule):
        return []
    return [
        LedgerEntry(
            slot=first,
            range_end=end,
            slot_count=None,
            outcome=SlotFate.EXCLUDED,
            reason=f"excluded by the producer's exclusions until {end.isoformat()}; not run",
            policy="exclude",
        )
        for first, end in schedule.excluded_ranges(slot, next_run)
    ]


def ranged(
    schedule: Schedule,
    first: datetime,
    end: datetime,
    *,
    outcome: SlotFate,
    reason: str,
    policy: str,
    anchor: datetime,
) -> LedgerEntry:
    """One entry for the slots from `first` (a slot) up to `end` (exclusive)."""
    count = count_slots(schedule, first, end, anchor=anchor)
    return LedgerEntry(
        slot=first,
        range_end=None if count == 1 else end,
        slot_count=count,
        outcome=outcome,
        reason=reason,
        policy=policy,
    )


def count_slots(
    schedule: Schedule, first: datetime, end: datetime, *, anchor: datetime
) -> int | None:
    """How many slots lie in [first, end), `first` being one; None past MAX_COUNTED_SLOTS."""
    if isinstance(schedule, IntervalSchedule):
        return math.ceil((end - first) / schedule.every)
    count = 0
    moment: datetime | None = first
    while moment is not None and moment < end:
        count += 1
        if count > MAX_COUNTED_SLOTS:
            return None
        moment = schedule.next_after(moment, anchor=anchor)
    return count

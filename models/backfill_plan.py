"""Which slots a backfill asks for: the producer's own schedule walked over a past range.

Pure: no I/O, no clock. The range is refused, naming the argument, when it is backwards, in the
future or holds more than MAX_BACKFILL_SLOTS slots, before anything is written.

A backfill takes only the slots before the producer's next run (`before`). Beat never goes back:
every slot it will send is the next run or one after it (a commit, a catch-up, a resume or a
redeploy only moves the next run later). So beat and a backfill never both ask for one slot, and
a slot that beat is running now (it still is the next run) is left to beat.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from models.errors import BackfillRangeError
from models.schedules import IntervalSchedule, Schedule

MAX_BACKFILL_SLOTS = 10_000
EPSILON = timedelta(microseconds=1)


@dataclass(frozen=True)
class BackfillRange:
    """A backfill's [start, end] (both included, aware UTC) and the slots it covers."""

    start: datetime
    end: datetime
    slots: tuple[datetime, ...]


def backfill_range(
    schedule: Schedule,
    start: datetime,
    end: datetime,
    *,
    now: datetime,
    before: datetime | None,
    limit: int = MAX_BACKFILL_SLOTS,
) -> BackfillRange:
    """The schedule's slots in [start, end] that come before `before` (the producer's next
    run, if any), oldest first; BackfillRangeError naming `--from`/`--to` if the range is
    backwards, reaches past `now` or holds more than `limit` slots."""
    if end > now:
        raise BackfillRangeError(
            "--to", f"{end.isoformat()} is in the future: a backfill ends by now"
        )
    if start > end:
        raise BackfillRangeError("--from", f"{start.isoformat()} is after --to {end.isoformat()}")
    last = end if before is None else min(end, before - EPSILON)
    anchor = _grid_anchor(schedule, start, before)
    slots: list[datetime] = []
    cursor = start - EPSILON
    while (slot := schedule.next_after(cursor, anchor=anchor)) is not None and slot <= last:
        if len(slots) == limit:
            raise BackfillRangeError(
                "--from/--to",
                f"the range holds more than {limit:,} slots of this schedule "
                f"(counted {limit + 1:,} by {slot.isoformat()}): backfill a shorter range",
            )
        slots.append(slot)
        cursor = slot
    return BackfillRange(start, end, tuple(slots))


def _grid_anchor(schedule: Schedule, start: datetime, before: datetime | None) -> datetime | None:
    """An interval's grid runs through its next run (`before`); the anchor is the grid point at
    or before `start`, so the walk finds the grid's slots in the range. Other schedules keep
    to the clock and need none. An interval with no next run is on a grid from `start`."""
    if not isinstance(schedule, IntervalSchedule):
        return None
    if before is None:
        return start
    steps = -((start - before) // schedule.every)  # whole intervals from start up to before
    return before - steps * schedule.every

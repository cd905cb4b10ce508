"""A schedule's next fire times, as `drumline validate --next` and `drumline plan` show them."""

from __future__ import annotations

from datetime import datetime

from models.schedules import Schedule


def upcoming(schedule: Schedule | None, start: datetime, count: int) -> list[datetime]:
    """The next `count` fire times after `start` (fewer if the schedule runs out); the first is
    the next run a deploy at `start` gives the producer."""
    moments: list[datetime] = []
    if schedule is None:
        return moments
    cursor: datetime | None = start
    anchor: datetime | None = None
    while cursor is not None and len(moments) < count:
        cursor = schedule.next_after(cursor, anchor=anchor)
        if cursor is not None:
            moments.append(cursor)
            anchor = cursor
    return moments

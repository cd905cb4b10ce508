"""Wall times to instants under a DST policy. Pure: no I/O, no clock.

A cron or RRULE entry names wall times (02:30 in Europe/Berlin). A DST change makes a wall time
happen twice (clocks go back: the repeated hour) or not at all (clocks go forward: the skipped
hour); the entry's `dst` policy says which instants it fires at then. The default, `first` and
`shift`, is cronie's and Vixie cron's behaviour for a job with a fixed hour.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from models.errors import ScheduleFieldError

# How far a DST change can move wall time; offsets are compared this far around an instant.
DST_MARGIN = timedelta(hours=3)
# Wall times one search may look at; a wall-clock entry needs a handful per fire time.
MAX_WALL_STEPS = 10_000
_SECOND = timedelta(seconds=1)

# An entry's naive wall times strictly after a naive wall time, in order.
WallSource = Callable[[datetime], Iterator[datetime]]


class Repeated(StrEnum):
    """A wall time in the hour repeated when clocks go back fires in ..."""

    FIRST = "first"  # its first pass only (cronie)
    LAST = "last"  # its second pass only
    BOTH = "both"  # both passes


class Skipped(StrEnum):
    """A wall time in the hour skipped when clocks go forward ..."""

    SHIFT = "shift"  # fires right after the change (cronie)
    SKIP = "skip"  # does not fire that day


@dataclass(frozen=True)
class DstPolicy:
    repeated: Repeated = Repeated.FIRST
    skipped: Skipped = Skipped.SHIFT

    @property
    def is_default(self) -> bool:
        return self == DstPolicy()

    def to_json(self) -> dict[str, str]:
        return {"repeated": self.repeated.value, "skipped": self.skipped.value}


def parse_dst(value: object, path: str) -> DstPolicy:
    """`{repeated: first | last | both, skipped: shift | skip}`, each optional."""
    if not isinstance(value, dict):
        raise ScheduleFieldError(path, "must be a mapping like {repeated: first, skipped: shift}")
    unknown = sorted(set(value) - {"repeated", "skipped"})
    if unknown:
        raise ScheduleFieldError(f"{path}.{unknown[0]}", "is not a known field")
    repeated = value.get("repeated", Repeated.FIRST.value)
    skipped = value.get("skipped", Skipped.SHIFT.value)
    if repeated not in tuple(Repeated):
        raise ScheduleFieldError(
            f"{path}.repeated", f"{str(repeated)[:40]!r} is not one of first, last, both"
        )
    if skipped not in tuple(Skipped):
        raise ScheduleFieldError(
            f"{path}.skipped", f"{str(skipped)[:40]!r} is not one of shift, skip"
        )
    return DstPolicy(Repeated(repeated), Skipped(skipped))


@dataclass(frozen=True)
class Placement:
    """Where one wall time lands: its instants (none if removed), and why if DST moved it."""

    wall: datetime  # naive
    instants: tuple[datetime, ...]
    note: str | None = None


def place(wall: datetime, zone: ZoneInfo, policy: DstPolicy) -> Placement:
    """The instants (UTC) at which the naive wall time `wall` in `zone` fires under `policy`."""
    first = wall.replace(tzinfo=zone, fold=0)
    second = wall.replace(tzinfo=zone, fold=1)
    if not exists(first):
        if policy.skipped == Skipped.SKIP:
            return Placement(wall, (), "removed: in the hour skipped by DST (skipped: skip)")
        gap_end = transition(first, second, zone)
        moved = f"moved: in the hour skipped by DST, runs at the change (skipped: {policy.skipped})"
        return Placement(wall, (gap_end,), moved)
    early, late = first.astimezone(UTC), second.astimezone(UTC)
    if early == late:
        return Placement(wall, (early,))
    rule = f"repeated: {policy.repeated}"
    if policy.repeated == Repeated.FIRST:
        return Placement(wall, (early,))  # where it would be anyway: nothing moved
    if policy.repeated == Repeated.LAST:
        return Placement(wall, (late,), f"moved: in the hour repeated by DST, second pass ({rule})")
    return Placement(wall, (early, late), f"in the hour repeated by DST, runs twice ({rule})")


def next_from_walls(
    walls_after: WallSource, zone: ZoneInfo, policy: DstPolicy, after: datetime
) -> datetime | None:
    """The first instant strictly after `after` of the wall times `walls_after` yields.

    Wall order and instant order differ only across a DST change, by at most the change
    itself, so the walk starts that much before `after`'s wall time and stops that much past
    the best wall found.
    """
    after = after.astimezone(UTC)
    low, _ = _offsets_around(after, zone)
    best: datetime | None = None
    best_wall: datetime | None = None
    spread = timedelta(0)
    for steps, wall in enumerate(walls_after((after + low).replace(tzinfo=None) - _SECOND)):
        if steps >= MAX_WALL_STEPS or (best_wall is not None and wall > best_wall + spread):
            break
        for instant in place(wall, zone, policy).instants:
            if instant > after and (best is None or instant < best):
                best, best_wall = instant, wall
                spread_low, spread_high = _offsets_around(instant, zone)
                spread = spread_high - spread_low
    return best


def placements_between(
    walls_after: WallSource, zone: ZoneInfo, policy: DstPolicy, start: datetime, end: datetime
) -> list[Placement]:
    """The wall times between `start` and `end` (instants, widened by the DST margin) that a
    DST change moved or removed, for `validate --next` to show."""
    found: list[Placement] = []
    first_wall = (start - DST_MARGIN).astimezone(zone).replace(tzinfo=None)
    last_wall = (end + DST_MARGIN).astimezone(zone).replace(tzinfo=None)
    for steps, wall in enumerate(walls_after(first_wall)):
        if steps >= MAX_WALL_STEPS or wall > last_wall:
            break
        placement = place(wall, zone, policy)
        if placement.note is not None:
            found.append(placement)
    return found


def _offsets_around(instant: datetime, zone: ZoneInfo) -> tuple[timedelta, timedelta]:
    """The least and greatest UTC offset of `zone` within the DST margin of `instant`."""
    offsets = [
        (instant + shift).astimezone(zone).utcoffset() or timedelta(0)
        for shift in (-DST_MARGIN, timedelta(0), DST_MARGIN)
    ]
    return min(offsets), max(offsets)


def exists(local: datetime) -> bool:
    """Whether an aware wall time occurs on the clock (False inside a spring-forward gap)."""
    round_trip = local.astimezone(UTC).astimezone(local.tzinfo)
    return round_trip.replace(tzinfo=None) == local.replace(tzinfo=None)


def transition(low: datetime, high: datetime, zone: ZoneInfo) -> datetime:
    """The instant `zone`'s UTC offset changes between `low` and `high` (to the second)."""
    # In UTC first: aware datetimes sharing a tzinfo compare by wall time, ignoring fold.
    low, high = sorted((low.astimezone(UTC), high.astimezone(UTC)))
    offset_before = low.astimezone(zone).utcoffset()
    while high - low > _SECOND:
        middle = low + (high - low) / 2
        if middle.astimezone(zone).utcoffset() == offset_before:
            low = middle
        else:
            high = middle
    return high.replace(microsecond=0)

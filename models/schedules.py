"""Schedule math: intervals and cron expressions in a time zone. Pure: no I/O, no clock.

Every instant in and out is a timezone-aware UTC datetime. A producer's schedule decides its
next slot strictly after a given instant; `None` means it never runs again. Every kind, manual
included, implements the `Schedule` protocol, so callers never ask which kind they hold.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import ClassVar, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from croniter import croniter
from croniter.croniter import CroniterBadCronError, CroniterBadDateError, CroniterError

from models.errors import ScheduleError
from models.vocabulary import ScheduleKind
from models.wall_clock import exists, transition

MAX_INTERVAL = timedelta(days=365)

_UNITS = {
    "w": timedelta(weeks=1),
    "d": timedelta(days=1),
    "h": timedelta(hours=1),
    "m": timedelta(minutes=1),
    "s": timedelta(seconds=1),
}
# Longer numbers are refused before int() sees them (int() of 4,300+ digits raises).
_MAX_DIGITS = 12
_LONG_NUMBER = re.compile(rf"\d{{{_MAX_DIGITS + 1},}}", re.ASCII)
_INTERVAL = re.compile(r"(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", re.ASCII)


def parse_interval(text: str) -> timedelta:
    """Parse `30s`, `5m`, `1h30m`, `1d`, `1w2d3h4m5s` (units in this order, each once)."""
    if not isinstance(text, str) or not text:
        raise ScheduleError("interval is empty: use a duration like '30s', '5m' or '1h30m'")
    if text.isascii() and text.isdigit():
        raise ScheduleError(f"interval {text!r} has no unit: write e.g. '{text}s' or '{text}m'")
    if text.startswith("-"):
        raise ScheduleError(f"interval {text!r} is negative: it must be a positive duration")
    if _LONG_NUMBER.search(text):
        raise ScheduleError(
            f"interval {text[:40]!r} is longer than the maximum of 365d "
            f"(it has a number of more than {_MAX_DIGITS} digits)"
        )
    match = _INTERVAL.fullmatch(text)
    if match is None:
        raise ScheduleError(
            f"interval {text!r} is not understood: use numbers with units w, d, h, m, s "
            "in that order, e.g. '1h30m'"
        )
    total = 0
    for unit, amount in zip(_UNITS, match.groups(), strict=True):
        if amount is not None:
            total += int(amount) * int(_UNITS[unit].total_seconds())
    if total == 0:
        raise ScheduleError(f"interval {text!r} is zero: it must be at least 1s")
    if total > MAX_INTERVAL.total_seconds():
        raise ScheduleError(f"interval {text!r} is longer than the maximum of 365d")
    return timedelta(seconds=total)


def format_interval(every: timedelta) -> str:
    """The canonical text of an interval: the inverse of `parse_interval`."""
    remaining = int(every.total_seconds())
    parts = []
    for unit, size in _UNITS.items():
        count, remaining = divmod(remaining, int(size.total_seconds()))
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"


def _require_aware(instant: datetime, name: str) -> None:
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime, got naive {instant}")


class Schedule(Protocol):
    """What every kind of schedule offers; `(kind, value, timezone)` is how it is stored."""

    kind: ClassVar[ScheduleKind]

    @property
    def value(self) -> str: ...

    @property
    def timezone(self) -> str: ...

    def next_after(self, after: datetime, anchor: datetime | None = None) -> datetime | None:
        """The next slot strictly after `after`, or None if there is none."""

    def describe(self, *, exhausted: bool = False) -> str:
        """In words, for people; `exhausted` when no slot is left to run."""


def _described(text: str, exhausted: bool) -> str:
    return f"{text}, exhausted (never runs again)" if exhausted else text


@dataclass(frozen=True)
class ManualSchedule:
    """No schedule of its own: the producer runs only when triggered, so it is never due."""

    kind: ClassVar[ScheduleKind] = ScheduleKind.MANUAL

    @property
    def value(self) -> str:
        return ""

    @property
    def timezone(self) -> str:
        return "UTC"

    def next_after(self, after: datetime, anchor: datetime | None = None) -> datetime | None:
        return None

    def describe(self, *, exhausted: bool = False) -> str:
        return "manual only"  # a manual producer has no slots to run out of


@dataclass(frozen=True)
class IntervalSchedule:
    """Every `every`, on a grid anchored at the producer's first slot."""

    every: timedelta
    kind: ClassVar[ScheduleKind] = ScheduleKind.INTERVAL

    @property
    def value(self) -> str:
        return format_interval(self.every)

    @property
    def timezone(self) -> str:
        return "UTC"

    def next_after(self, after: datetime, anchor: datetime | None = None) -> datetime:
        """The first grid point `anchor + k*every` strictly after `after` (k >= 0).

        Without an anchor a fresh grid starts at `after`. Missed slots coalesce: however far
        back the anchor is, one slot comes out, the next one after `after`.
        """
        _require_aware(after, "after")
        after = after.astimezone(UTC)
        if anchor is None:
            return after + self.every
        _require_aware(anchor, "anchor")
        anchor = anchor.astimezone(UTC)
        if anchor > after:
            return anchor
        steps = (after - anchor) // self.every + 1
        return anchor + steps * self.every

    def describe(self, *, exhausted: bool = False) -> str:
        return _described(f"every {self.value}", exhausted)


_ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_FIELDS_5 = ("minute", "hour", "day-of-month", "month", "day-of-week")
_FIELDS_6 = ("second", *_FIELDS_5)
# Longest stretch a DST change can move wall time; a repeated hour is looked for within it.
_DST_MARGIN = timedelta(hours=3)
# The search for a cron's next firing stops this far past its start: a cron with no match in
# that time never fires (30 February; or every match in an hour skipped by DST).
HORIZON_YEARS = 30
# ... and after this many candidate wall times. Each step is a match, a DST gap jumped over or
# a repeated hour skipped, so a cron that fires at all needs a handful; the budget only stops
# a pathological one in milliseconds.
MAX_SEARCH_STEPS = 1000
# The last instant a search may reach: beyond it a horizon would pass the year 9999.
_LATEST = datetime(9999, 1, 1, tzinfo=UTC) - timedelta(days=366 * (HORIZON_YEARS + 1))


@dataclass(frozen=True)
class CronSchedule:
    """A cron expression evaluated on the wall clock of `timezone`.

    5 fields, or 6 with **seconds first** (as in Quartz and Spring): `*/10 * * * * *` fires
    every ten seconds. Across DST changes it follows cronie and Vixie cron: a job with a fixed
    minute and hour runs once on the day clocks go back, and once right after the change when
    its time falls in the hour skipped going forward; a job whose minute or hour field is a
    wildcard keeps to real elapsed time.
    """

    expression: str
    timezone: str
    kind: ClassVar[ScheduleKind] = ScheduleKind.CRON

    @property
    def value(self) -> str:
        return self.expression

    @property
    def _fields(self) -> list[str]:
        return _ALIASES.get(self.expression, self.expression).split()

    @property
    def _zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def _wildcard(self) -> bool:
        """Vixie cron's MIN_STAR | HR_STAR: such jobs run by real elapsed time across DST."""
        fields = self._fields
        minute, hour = (fields[1], fields[2]) if len(fields) == 6 else (fields[0], fields[1])
        return minute.startswith("*") or hour.startswith("*")

    def describe(self, *, exhausted: bool = False) -> str:
        return _described(f"cron '{self.expression}' ({self.timezone})", exhausted)

    def next_after(self, after: datetime, anchor: datetime | None = None) -> datetime | None:
        """The first firing strictly after `after`, or None if it never fires again.

        "Never" means: no firing within `HORIZON_YEARS` of `after` (found in at most
        `MAX_SEARCH_STEPS` steps), so the answer comes in milliseconds whatever the cron.
        """
        _require_aware(after, "after")
        after = after.astimezone(UTC)
        if after > _LATEST:
            return None
        zone = self._zone
        first = self._first_in_wall_order(after, zone)
        second = self._first_in_second_pass(after, zone) if self._wildcard else None
        found = [instant for instant in (first, second) if instant is not None]
        return min(found, default=None)

    def _walls(self, start: datetime) -> croniter:
        """Wall-clock matches strictly after the naive wall time `start`."""
        return croniter(
            " ".join(self._fields),
            start,
            second_at_beginning=len(self._fields) == 6,
            max_years_between_matches=HORIZON_YEARS,
        )

    def _first_in_wall_order(self, after: datetime, zone: ZoneInfo) -> datetime | None:
        """The first firing after `after` that is a wall time's first occurrence (or, for a
        fixed job, the end of the gap its wall time fell into).

        These instants rise with the wall time, so the first match past `after`'s wall time
        is the answer. Two things are stepped over rather than walked through: a DST gap (for
        a wildcard job, whose matches there do not fire) and, when `after` lies in the second
        pass of a repeated hour, the rest of that hour (its first passes are all past).
        """
        local = after.astimezone(zone)
        start = local.replace(tzinfo=None)
        if local.fold == 1 and local.replace(fold=0).utcoffset() != local.utcoffset():
            start = _repeated_hour_end(after, zone) - _SECOND
        horizon = (after + timedelta(days=366 * HORIZON_YEARS)).astimezone(zone)
        walls = self._walls(start)
        for _ in range(MAX_SEARCH_STEPS):
            try:
                wall: datetime = walls.get_next(datetime)
            except CroniterBadDateError:
                return None
            if wall > horizon.replace(tzinfo=None):
                return None
            first = wall.replace(tzinfo=zone, fold=0)
            if exists(first):
                instant = first.astimezone(UTC)
                if instant > after:
                    return instant
                continue
            gap_end = transition(first, wall.replace(tzinfo=zone, fold=1), zone)
            if not self._wildcard:
                return gap_end if gap_end > after else None
            walls = self._walls(gap_end.astimezone(zone).replace(tzinfo=None) - _SECOND)
        return None

    def _first_in_second_pass(self, after: datetime, zone: ZoneInfo) -> datetime | None:
        """For a wildcard job: its first firing after `after` in the second pass of an hour
        repeated when clocks went back close to `after` (within `_DST_MARGIN`).

        Only such a second pass can hold a firing earlier than the wall-order answer: a later
        repeated hour's first pass comes before its second.
        """
        low, high = after - _DST_MARGIN, after + _DST_MARGIN
        before, later = low.astimezone(zone).utcoffset(), high.astimezone(zone).utcoffset()
        if before is None or later is None or before <= later:
            return None
        change = transition(low, high, zone)
        repeat_start = change.astimezone(zone).replace(tzinfo=None)  # second pass begins
        repeat_end = repeat_start + (before - later)
        # A second-pass wall W fires at W - later: after `after` when W > after + later.
        start = max((after + later).replace(tzinfo=None), repeat_start - _SECOND)
        try:
            wall: datetime = self._walls(start).get_next(datetime)
        except CroniterBadDateError:
            return None
        if wall >= repeat_end:
            return None
        instant = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
        return instant if instant > after else None


_SECOND = timedelta(seconds=1)


def _repeated_hour_end(after: datetime, zone: ZoneInfo) -> datetime:
    """The naive wall time at which the repeated hour holding `after` (second pass) ends."""
    local = after.astimezone(zone)
    first_offset, second_offset = local.replace(fold=0).utcoffset(), local.utcoffset()
    assert first_offset is not None and second_offset is not None
    change = transition(after - _DST_MARGIN, after, zone)
    return change.astimezone(zone).replace(tzinfo=None) + (first_offset - second_offset)


def parse_cron(expression: str, timezone: str = "UTC") -> CronSchedule:
    """Validate a cron expression and time zone; errors name the field that is wrong."""
    zone_name = check_timezone(timezone)
    if not isinstance(expression, str) or not expression.strip():
        raise ScheduleError("cron expression is empty")
    expression = " ".join(expression.split())
    if expression.startswith("@") and expression not in _ALIASES:
        raise ScheduleError(
            f"invalid cron {expression!r}: unknown alias (use one of {', '.join(_ALIASES)})"
        )
    fields = _ALIASES.get(expression, expression).split()
    if len(fields) not in (5, 6):
        raise ScheduleError(
            f"invalid cron {expression!r}: it has {len(fields)} fields; use 5 (minute hour "
            "day-of-month month day-of-week) or 6 with seconds first"
        )
    names = _FIELDS_6 if len(fields) == 6 else _FIELDS_5
    for name, field in zip(names, fields, strict=True):
        if problem := _range_or_step_problem(name, field):
            raise ScheduleError(
                f"invalid cron {expression[:80]!r}: {name} field {field[:40]!r} {problem}"
            )
    for position, (name, field) in enumerate(zip(names, fields, strict=True)):
        probe = ["*"] * len(fields)
        probe[position] = field
        try:
            croniter(" ".join(probe), second_at_beginning=len(fields) == 6)
        except (CroniterBadCronError, CroniterError, ValueError, KeyError) as exc:
            raise ScheduleError(
                f"invalid cron {expression!r}: {name} field {field!r} is not valid ({exc})"
            ) from None
    try:
        croniter(" ".join(fields), second_at_beginning=len(fields) == 6)
    except (CroniterBadCronError, CroniterError, ValueError, KeyError) as exc:
        raise ScheduleError(f"invalid cron {expression!r}: {exc}") from None
    return CronSchedule(expression=expression, timezone=zone_name)


# How many values each field has: a step is at most that (`*/60` in minutes is the last).
_FIELD_SIZES = {
    "second": 60,
    "minute": 60,
    "hour": 24,
    "day-of-month": 31,
    "month": 12,
    "day-of-week": 7,
}
_NAMED_VALUES = {
    name: number
    for names, first in (
        (("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1),
        (("sun", "mon", "tue", "wed", "thu", "fri", "sat"), 0),
    )
    for number, name in enumerate(names, start=first)
}


def _range_or_step_problem(name: str, field: str) -> str | None:
    """What croniter lets through but cron does not: `5-1` (croniter wraps it around) and a
    step beyond the field's size (`*/99999999999999999999`, an int of any length)."""
    for part in field.split(","):
        base, slash, step = part.partition("/")
        if slash and not (
            step.isascii() and step.isdigit() and len(step) <= 2 and int(step) <= _FIELD_SIZES[name]
        ):
            return f"has step {step[:20]!r}: use a whole number from 1 to {_FIELD_SIZES[name]}"
        low, dash, high = base.partition("-")
        if dash:
            first, last = _field_value(low, name, end=False), _field_value(high, name, end=True)
            if first is not None and last is not None and first > last:
                return f"has range {base!r} that runs backwards: write the lower value first"
    return None


def _field_value(text: str, name: str, *, end: bool) -> int | None:
    """A range bound as a number (names too; `sun` ending a weekday range is 7); None if it
    is neither, which croniter then judges."""
    text = text.lower()
    if text.isascii() and text.isdigit():
        return int(text) if len(text) <= 4 else None
    if end and name == "day-of-week" and text == "sun":
        return 7
    return _NAMED_VALUES.get(text)


def check_timezone(name: str) -> str:
    """`name` if it is an IANA time zone (a zone or one of its link names, like `UTC`).

    Refused although the zone files exist: `localtime` (whatever this host is set to, not
    what the workers are), `Factory`, `posixrules`, and the `posix/` and `right/` copies (the
    latter counts leap seconds, which would shift every run).
    """
    if not isinstance(name, str) or not name:
        raise ScheduleError("timezone is empty: use an IANA name such as 'Europe/Berlin'")
    if name not in _iana_names():
        raise ScheduleError(
            f"unknown timezone {name[:80]!r}: use an IANA name such as 'Europe/Berlin' or 'UTC'"
        )
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(
            f"unknown timezone {name!r}: use an IANA name such as 'Europe/Berlin' or 'UTC'"
        ) from None
    return name


_NOT_ZONES = frozenset({"localtime", "Factory", "posixrules"})


@functools.cache
def _iana_names() -> frozenset[str]:
    """The zone names found on this host's tz database, without those that are no zone."""
    return frozenset(
        name
        for name in available_timezones()
        if name not in _NOT_ZONES and not name.startswith(("posix/", "right/"))
    )


def compile_schedule(
    *, interval: str | None, cron: str | None, timezone: str | None
) -> Schedule | None:
    """The schedule a producer definition asks for; None for a manual-only producer."""
    if interval is not None and cron is not None:
        raise ScheduleError("set either interval or cron, not both")
    if interval is not None:
        if timezone is not None:
            raise ScheduleError("timezone applies to cron schedules only, not to an interval")
        return IntervalSchedule(parse_interval(interval))
    if cron is not None:
        return parse_cron(cron, timezone if timezone is not None else "UTC")
    if timezone is not None:
        raise ScheduleError("timezone is set but there is no cron schedule to apply it to")
    return None

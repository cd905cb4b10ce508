"""The entries of a `schedules:` list: an interval, a cron, an RRULE or a one-off `at`.

Pure: no I/O, no clock. Each entry answers `next_after(after)` (strictly after, UTC, None when it
never fires again) and knows its JSON form, which is how a producer's schedule is stored.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from croniter import croniter
from croniter.croniter import CroniterBadDateError
from dateutil.rrule import rrule, rrulestr

from models.errors import ScheduleError, ScheduleFieldError
from models.schedules import (
    HORIZON_YEARS,
    CronSchedule,
    check_timezone,
    format_interval,
    parse_cron,
    parse_interval,
)
from models.wall_clock import (
    DstPolicy,
    Placement,
    next_from_walls,
    parse_dst,
    placements_between,
)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MAX_RRULE_CHARS = 500
MAX_RRULE_COUNT = 100_000
MAX_RRULE_INTERVAL = 10_000
# Every instant a definition names lies in this range, far from the ends of datetime.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(3000, 1, 1, tzinfo=UTC)
_FREQUENCIES = ("YEARLY", "MONTHLY", "WEEKLY", "DAILY", "HOURLY")


class Entry(Protocol):
    """One way a producer's slots come about; a schedule merges several."""

    @property
    def timezone(self) -> str:
        """The zone of its wall clock (UTC for an interval or an instant)."""

    def next_after(self, after: datetime) -> datetime | None: ...

    def describe(self) -> str: ...

    def to_json(self) -> dict[str, Any]: ...

    def dst_placements(self, start: datetime, end: datetime) -> list[Placement]:
        """Wall times DST moved or removed near (start, end]; none for an instant-based entry."""


@dataclass(frozen=True)
class IntervalEntry:
    """Every `every`, on the grid `start + k*every` (start defaults to 1970-01-01T00:00Z, so
    `15m` fires at :00, :15, :30 and :45 past each UTC hour)."""

    every: timedelta
    start: datetime = EPOCH
    timezone: str = "UTC"

    def next_after(self, after: datetime) -> datetime:
        if after < self.start:
            return self.start
        return self.start + ((after - self.start) // self.every + 1) * self.every

    def describe(self) -> str:
        start = "" if self.start == EPOCH else f" from {_utc_text(self.start)}"
        return f"every {format_interval(self.every)}{start}"

    def to_json(self) -> dict[str, Any]:
        return {"interval": format_interval(self.every), "start": _utc_text(self.start)}

    def dst_placements(self, start: datetime, end: datetime) -> list[Placement]:
        return []


@dataclass(frozen=True)
class AtEntry:
    """Once, at `instant`; exhausted after."""

    instant: datetime
    timezone: str = "UTC"

    def next_after(self, after: datetime) -> datetime | None:
        return self.instant if self.instant > after else None

    def describe(self) -> str:
        return f"once at {_utc_text(self.instant)}"

    def to_json(self) -> dict[str, Any]:
        return {"at": _utc_text(self.instant)}

    def dst_placements(self, start: datetime, end: datetime) -> list[Placement]:
        return []


@dataclass(frozen=True)
class CronEntry:
    """A cron on the wall clock of its time zone. With the default DST policy it is exactly a
    single `cron:` producer; another policy applies to fixed-hour crons only."""

    cron: CronSchedule
    dst: DstPolicy = field(default_factory=DstPolicy)

    @property
    def timezone(self) -> str:
        return self.cron.timezone

    def next_after(self, after: datetime) -> datetime | None:
        if self.dst.is_default:
            return self.cron.next_after(after)
        return next_from_walls(self._walls, ZoneInfo(self.cron.timezone), self.dst, after)

    def _walls(self, start: datetime) -> Iterator[datetime]:
        walls = _cron_walls(self.cron.expression, start)
        horizon = start + timedelta(days=366 * HORIZON_YEARS)
        while (wall := next(walls, None)) is not None and wall <= horizon:
            yield wall

    def describe(self) -> str:
        return self.cron.describe() + _dst_text(self.dst)

    def to_json(self) -> dict[str, Any]:
        return {
            "cron": self.cron.expression,
            "timezone": self.cron.timezone,
            "dst": self.dst.to_json(),
        }

    def dst_placements(self, start: datetime, end: datetime) -> list[Placement]:
        if is_wildcard_cron(self.cron.expression):
            return []  # keeps to real elapsed time: DST moves nothing
        return placements_between(self._walls, ZoneInfo(self.cron.timezone), self.dst, start, end)


@dataclass(frozen=True)
class RRuleEntry:
    """An RFC 5545 RRULE from a wall-clock `dtstart` in `timezone`; COUNT and UNTIL end it."""

    text: str
    dtstart: datetime  # naive wall time
    timezone: str
    dst: DstPolicy = field(default_factory=DstPolicy)

    def next_after(self, after: datetime) -> datetime | None:
        return next_from_walls(self._walls, ZoneInfo(self.timezone), self.dst, after)

    def _walls(self, start: datetime) -> Iterator[datetime]:
        rule = _compile_rrule(self.text, _fast_forwarded(self.text, self.dtstart, start))
        walls: Iterator[datetime] = rule.xafter(start, inc=False)
        horizon = start + timedelta(days=366 * HORIZON_YEARS)
        while (wall := next(walls, None)) is not None and wall <= horizon:
            yield wall

    def describe(self) -> str:
        since = self.dtstart.isoformat()
        return f"rrule '{self.text}' from {since} ({self.timezone}){_dst_text(self.dst)}"

    def to_json(self) -> dict[str, Any]:
        return {
            "rrule": self.text,
            "dtstart": self.dtstart.isoformat(),
            "timezone": self.timezone,
            "dst": self.dst.to_json(),
        }

    def dst_placements(self, start: datetime, end: datetime) -> list[Placement]:
        return placements_between(self._walls, ZoneInfo(self.timezone), self.dst, start, end)


def _dst_text(policy: DstPolicy) -> str:
    if policy.is_default:
        return ""
    return f", dst repeated: {policy.repeated}, skipped: {policy.skipped}"


def _utc_text(instant: datetime) -> str:
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _cron_walls(expression: str, start: datetime) -> Iterator[datetime]:
    fields = CronSchedule(expression, "UTC")._fields
    walls = croniter(
        " ".join(fields),
        start,
        second_at_beginning=len(fields) == 6,
        max_years_between_matches=HORIZON_YEARS,
    )
    while True:
        try:
            yield walls.get_next(datetime)
        except CroniterBadDateError:  # no match within the horizon: it never fires again
            return


def is_wildcard_cron(expression: str) -> bool:
    """A cron whose minute or hour field is a wildcard: it keeps to real elapsed time."""
    return CronSchedule(expression, "UTC")._wildcard


def _compile_rrule(text: str, dtstart: datetime) -> rrule:
    rule = rrulestr(text, dtstart=dtstart, cache=False)
    assert isinstance(rule, rrule)  # text is one RRULE line, checked by parse_rrule
    return rule


def _fast_forwarded(text: str, dtstart: datetime, start: datetime) -> datetime:
    """dateutil walks every period from DTSTART; an HOURLY rule without COUNT may start from
    the last period before `start` instead (the same set: its implicit BY parts are minute and
    second, which whole periods keep)."""
    parts = rule_parts(text)
    if parts.get("FREQ") != "HOURLY" or "COUNT" in parts or dtstart >= start:
        return dtstart
    period = timedelta(hours=int(parts.get("INTERVAL", "1")))
    periods = (start - dtstart) // period - 1
    return dtstart + max(periods, 0) * period


def rule_parts(text: str) -> dict[str, str]:
    """`FREQ=WEEKLY;COUNT=3` as {"FREQ": "WEEKLY", "COUNT": "3"} (names upper-cased)."""
    return {
        name.strip().upper(): value.strip().upper()
        for name, _, value in (part.partition("=") for part in text.split(";") if part)
    }


def parse_rrule(
    text: object, dtstart: object, timezone: str, dst: DstPolicy, path: str
) -> RRuleEntry:
    """Validate an RRULE line with its `dtstart` (a wall time, no offset) and time zone."""
    if not isinstance(text, str) or not text.strip():
        raise ScheduleFieldError(f"{path}.rrule", "is empty: write e.g. 'FREQ=WEEKLY;BYDAY=MO'")
    text = text.strip().removeprefix("RRULE:")
    if len(text) > MAX_RRULE_CHARS:
        raise ScheduleFieldError(f"{path}.rrule", f"is longer than {MAX_RRULE_CHARS} characters")
    if not text.isascii() or not text.isprintable() or "DTSTART" in text.upper():
        raise ScheduleFieldError(
            f"{path}.rrule", "must be one RRULE line (set its start with `dtstart`, not DTSTART)"
        )
    start = parse_wall_time(dtstart, f"{path}.dtstart")
    try:
        rule = rrulestr(text, dtstart=start, cache=False)
    except (ValueError, TypeError, KeyError, IndexError, OverflowError) as exc:
        detail = " ".join(str(exc).split())[:160]
        raise ScheduleFieldError(f"{path}.rrule", f"{text[:80]!r} is not valid: {detail}") from None
    if not isinstance(rule, rrule):
        raise ScheduleFieldError(f"{path}.rrule", "must be one RRULE line")
    parts = rule_parts(text)
    if parts.get("FREQ") not in _FREQUENCIES:
        raise ScheduleFieldError(
            f"{path}.rrule",
            "FREQ must be YEARLY, MONTHLY, WEEKLY, DAILY or HOURLY; for finer schedules use a "
            "cron or an interval",
        )
    for name, most in (("COUNT", MAX_RRULE_COUNT), ("INTERVAL", MAX_RRULE_INTERVAL)):
        if name in parts and not _whole_number_within(parts[name], most):
            raise ScheduleFieldError(f"{path}.rrule", f"{name} must be 1 to {most}")
    return RRuleEntry(text=text, dtstart=start, timezone=timezone, dst=dst)


def _whole_number_within(text: str, most: int) -> bool:
    return text.isascii() and text.isdigit() and len(text) <= 6 and 1 <= int(text) <= most


def parse_wall_time(value: object, path: str) -> datetime:
    """A wall time without an offset, to the second: `2026-01-05T09:00:00`."""
    if not isinstance(value, str):
        raise ScheduleFieldError(path, "is required: a wall time like '2026-01-05T09:00:00'")
    try:
        wall = datetime.fromisoformat(value)
    except ValueError:
        raise ScheduleFieldError(
            path, f"{value[:40]!r} is not a wall time like '2026-01-05T09:00:00'"
        ) from None
    if wall.tzinfo is not None:
        raise ScheduleFieldError(
            path, f"{value!r} has an offset: give the wall time, the zone is `timezone`"
        )
    if wall.microsecond:
        raise ScheduleFieldError(path, f"{value!r} has fractions of a second")
    if not EARLIEST.replace(tzinfo=None) <= wall < LATEST.replace(tzinfo=None):
        raise ScheduleFieldError(path, f"{value!r} is out of range (1970 to 2999)")
    return wall


def parse_instant(value: object, timezone: str, path: str) -> datetime:
    """An ISO 8601 instant (`2026-12-31T23:00:00+01:00`, `...Z`), or a wall time read in
    `timezone`, to the second."""
    if not isinstance(value, str):
        raise ScheduleFieldError(path, "must be an ISO 8601 time like '2026-12-31T23:00:00Z'")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ScheduleFieldError(
            path, f"{value[:40]!r} is not an ISO 8601 time like '2026-12-31T23:00:00Z'"
        ) from None
    if moment.microsecond:
        raise ScheduleFieldError(path, f"{value!r} has fractions of a second")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo(timezone))
    if (
        not EARLIEST.replace(tzinfo=None)
        <= moment.replace(tzinfo=None)
        < LATEST.replace(tzinfo=None)
    ):
        raise ScheduleFieldError(path, f"{value!r} is out of range (1970 to 2999)")
    return moment.astimezone(UTC)


_ENTRY_KEYS = {
    "interval": {"interval", "start"},
    "cron": {"cron", "timezone", "dst"},
    "rrule": {"rrule", "dtstart", "timezone", "dst"},
    "at": {"at", "timezone"},
}


def parse_entry(fields: object, path: str, default_timezone: str | None = None) -> Entry:
    """One entry of `schedules:` (or a producer's own single schedule fields)."""
    if not isinstance(fields, dict):
        raise ScheduleFieldError(path, "must be a mapping with one of interval, cron, rrule, at")
    kinds = [kind for kind in _ENTRY_KEYS if kind in fields]
    if len(kinds) != 1:
        what = "none" if not kinds else " and ".join(kinds)
        raise ScheduleFieldError(
            path, f"must set exactly one of interval, cron, rrule, at (it sets {what})"
        )
    kind = kinds[0]
    for key in fields:
        if key not in _ENTRY_KEYS[kind]:
            allowed = ", ".join(sorted(_ENTRY_KEYS[kind] - {kind}))
            raise ScheduleFieldError(
                f"{path}.{str(key)[:40]}", f"does not apply to {kind} (it takes {allowed})"
            )
    timezone = zone_field(fields.get("timezone", default_timezone), f"{path}.timezone")
    if kind == "interval":
        return _interval_entry(fields, path)
    if kind == "at":
        return AtEntry(parse_instant(fields["at"], timezone, f"{path}.at"))
    dst = parse_dst(fields["dst"], f"{path}.dst") if "dst" in fields else DstPolicy()
    if kind == "rrule":
        return parse_rrule(fields["rrule"], fields.get("dtstart"), timezone, dst, path)
    try:
        cron = parse_cron(fields["cron"], timezone)
    except ScheduleError as exc:
        raise ScheduleFieldError(f"{path}.cron", str(exc)) from None
    if not dst.is_default and is_wildcard_cron(cron.expression):
        raise ScheduleFieldError(
            f"{path}.dst",
            "applies to a cron with a fixed minute and hour; this one keeps to real elapsed "
            "time across DST changes",
        )
    return CronEntry(cron, dst)


def _interval_entry(fields: dict[str, Any], path: str) -> IntervalEntry:
    try:
        every = parse_interval(fields["interval"])
    except ScheduleError as exc:
        raise ScheduleFieldError(f"{path}.interval", str(exc)) from None
    start = parse_instant(fields["start"], "UTC", f"{path}.start") if "start" in fields else EPOCH
    return IntervalEntry(every, start)


def zone_field(value: object, path: str) -> str:
    """A `timezone` field: an IANA name, default UTC."""
    if value is None:
        return "UTC"
    try:
        return check_timezone(value if isinstance(value, str) else "")
    except ScheduleError as exc:
        raise ScheduleFieldError(path, str(exc)) from None

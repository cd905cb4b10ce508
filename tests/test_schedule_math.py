"""Schedule math (models/schedules.py): intervals, cron expressions, time zones and DST.

Pure functions only: no database, no Redis, no clock. The DST expectations follow cronie and
Vixie cron, as documented on `CronSchedule`: a job with a fixed minute and hour runs once on the
day clocks go back (in the first pass) and once at the transition instant when its time falls in
the hour skipped going forward; a job whose minute or hour field is a wildcard keeps to real
elapsed time.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter
from croniter.croniter import CroniterBadDateError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models.errors import ScheduleError
from models.schedules import (
    HORIZON_YEARS,
    MAX_INTERVAL,
    CronSchedule,
    IntervalSchedule,
    ManualSchedule,
    compile_schedule,
    format_interval,
    parse_cron,
    parse_interval,
)
from models.stored_schedules import schedule_from_row

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
MINUTE = timedelta(minutes=1)


def utc(
    year: int,
    month: int,
    day: int,
    hour: int = 0,
    minute: int = 0,
    second: int = 0,
    microsecond: int = 0,
) -> datetime:
    return datetime(year, month, day, hour, minute, second, microsecond, tzinfo=UTC)


def fire_times(schedule: CronSchedule, start: datetime, end: datetime) -> list[datetime]:
    """Every firing in (start, end], by chaining next_after as beat does."""
    out: list[datetime] = []
    cursor: datetime | None = start
    while True:
        assert cursor is not None
        cursor = schedule.next_after(cursor)
        if cursor is None or cursor > end:
            return out
        out.append(cursor)


# --------------------------------------------------------------------------------------------
# Intervals
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds", "canonical"),
    [
        ("30s", 30, "30s"),
        ("1s", 1, "1s"),
        ("5m", 300, "5m"),
        ("1h", 3600, "1h"),
        ("1h30m", 5400, "1h30m"),
        ("1d", 86400, "1d"),
        ("1w", 7 * 86400, "1w"),
        ("1w2d3h4m5s", 7 * 86400 + 2 * 86400 + 3 * 3600 + 4 * 60 + 5, "1w2d3h4m5s"),
        ("90m", 5400, "1h30m"),
        ("60s", 60, "1m"),
        ("3600s", 3600, "1h"),
        ("86400s", 86400, "1d"),
        ("7d", 7 * 86400, "1w"),
        ("48h", 2 * 86400, "2d"),
        ("0h5m", 300, "5m"),
        ("05m", 300, "5m"),
        ("1d0s", 86400, "1d"),
        ("365d", 365 * 86400, "52w1d"),
        ("52w1d", 365 * 86400, "52w1d"),
    ],
)
def test_parse_interval_valid_forms(text: str, seconds: int, canonical: str) -> None:
    every = parse_interval(text)
    assert every == timedelta(seconds=seconds)
    assert format_interval(every) == canonical
    # The canonical text parses back to the same duration.
    assert parse_interval(canonical) == every


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ("", ["interval is empty"]),
        ("0s", ["'0s'", "is zero"]),
        ("0m0s", ["'0m0s'", "is zero"]),
        ("00s", ["'00s'", "is zero"]),
        ("-5m", ["'-5m'", "is negative"]),
        ("5x", ["'5x'", "not understood", "w, d, h, m, s"]),
        ("30", ["'30'", "has no unit"]),
        ("0", ["'0'", "has no unit"]),
        ("1m1h", ["'1m1h'", "not understood", "in that order"]),
        ("1s1m", ["'1s1m'", "not understood", "in that order"]),
        ("1h1h", ["'1h1h'", "not understood"]),
        (" 5m", ["' 5m'", "not understood"]),
        ("5m ", ["'5m '", "not understood"]),
        ("5 m", ["'5 m'", "not understood"]),
        ("5M", ["'5M'", "not understood"]),
        ("1.5h", ["'1.5h'", "not understood"]),
        ("m", ["'m'", "not understood"]),
        ("+5m", ["'+5m'", "not understood"]),
        ("366d", ["'366d'", "longer than the maximum of 365d"]),
        ("53w", ["'53w'", "longer than the maximum"]),
        ("365d1s", ["'365d1s'", "longer than the maximum"]),
        ("99999999999999999999d", ["'99999999999999999999d'", "longer than the maximum"]),
        ("99999999999999999999999999999999999999s", ["longer than the maximum"]),
    ],
)
def test_parse_interval_invalid_forms(text: str, fragments: list[str]) -> None:
    with pytest.raises(ScheduleError) as caught:
        parse_interval(text)
    message = str(caught.value)
    assert message.startswith("interval")
    for fragment in fragments:
        assert fragment in message, (fragment, message)


@pytest.mark.parametrize("value", [None, 30, 1.5, b"5m"])
def test_parse_interval_rejects_non_strings(value: object) -> None:
    with pytest.raises(ScheduleError):
        parse_interval(value)  # type: ignore[arg-type]


def test_schedule_error_is_a_value_error() -> None:
    assert issubclass(ScheduleError, ValueError)


def test_max_interval_is_exactly_accepted() -> None:
    assert parse_interval("365d") == MAX_INTERVAL
    with pytest.raises(ScheduleError, match="365d1s"):
        parse_interval("365d1s")


@pytest.mark.parametrize("text", ["5m\n", "1h\n"])
def test_parse_interval_rejects_trailing_newline(text: str) -> None:
    with pytest.raises(ScheduleError, match="not understood"):
        parse_interval(text)


def test_parse_interval_rejects_non_ascii_digits() -> None:
    with pytest.raises(ScheduleError):
        parse_interval("\u0663s")


@pytest.mark.parametrize(
    ("every", "text"),
    [
        (timedelta(seconds=1), "1s"),
        (timedelta(seconds=61), "1m1s"),
        (timedelta(hours=25), "1d1h"),
        (timedelta(days=8, seconds=1), "1w1d1s"),
        (timedelta(0), "0s"),
    ],
)
def test_format_interval(every: timedelta, text: str) -> None:
    assert format_interval(every) == text


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=1, max_value=int(MAX_INTERVAL.total_seconds())))
def test_format_then_parse_interval_round_trips(seconds: int) -> None:
    every = timedelta(seconds=seconds)
    text = format_interval(every)
    assert parse_interval(text) == every
    assert format_interval(parse_interval(text)) == text


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=400), min_size=5, max_size=5))
def test_parse_interval_sums_its_units(amounts: list[int]) -> None:
    text = "".join(f"{n}{u}" for n, u in zip(amounts, "wdhms", strict=True) if n)
    total = timedelta(
        weeks=amounts[0],
        days=amounts[1],
        hours=amounts[2],
        minutes=amounts[3],
        seconds=amounts[4],
    )
    if not text:
        with pytest.raises(ScheduleError):
            parse_interval(text)
    elif total > MAX_INTERVAL:
        with pytest.raises(ScheduleError, match="longer than the maximum"):
            parse_interval(text)
    else:
        assert parse_interval(text) == total


# --------------------------------------------------------------------------------------------
# Interval grid
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("every", "after", "anchor", "expected"),
    [
        # Anchor None: a fresh grid starts at `after`.
        ("30s", utc(2026, 1, 1, 12), None, utc(2026, 1, 1, 12, 0, 30)),
        ("1h30m", utc(2026, 1, 1, 12, 0, 7), None, utc(2026, 1, 1, 13, 30, 7)),
        # Anchor in the future: the anchor itself is the next slot.
        ("5m", utc(2026, 1, 1, 12), utc(2026, 1, 1, 12, 3), utc(2026, 1, 1, 12, 3)),
        ("5m", utc(2026, 1, 1, 12), utc(2027, 6, 1), utc(2027, 6, 1)),
        # Anchor == after: strictly after, so one step on.
        ("5m", utc(2026, 1, 1, 12), utc(2026, 1, 1, 12), utc(2026, 1, 1, 12, 5)),
        # After exactly on a later grid point: the following grid point.
        ("5m", utc(2026, 1, 1, 12, 10), utc(2026, 1, 1, 12), utc(2026, 1, 1, 12, 15)),
        # After between grid points.
        ("5m", utc(2026, 1, 1, 12, 11, 59), utc(2026, 1, 1, 12), utc(2026, 1, 1, 12, 15)),
        ("5m", utc(2026, 1, 1, 12, 14, 59), utc(2026, 1, 1, 12), utc(2026, 1, 1, 12, 15)),
        # Anchor far in the past: missed slots coalesce into the one next slot.
        ("30s", utc(2026, 1, 1, 12, 0, 10), utc(2020, 1, 1), utc(2026, 1, 1, 12, 0, 30)),
        ("7m", utc(2026, 1, 1), utc(2025, 1, 1), utc(2026, 1, 1, 0, 2)),
        # An off-grid anchor keeps its own phase.
        ("1h", utc(2026, 1, 1, 12, 30), utc(2026, 1, 1, 0, 17, 3), utc(2026, 1, 1, 13, 17, 3)),
        ("1d", utc(2026, 3, 29, 12), utc(2026, 3, 1, 6), utc(2026, 3, 30, 6)),
    ],
)
def test_interval_next_after(
    every: str, after: datetime, anchor: datetime | None, expected: datetime
) -> None:
    schedule = IntervalSchedule(parse_interval(every))
    result = schedule.next_after(after, anchor=anchor)
    assert result == expected
    assert result.utcoffset() == timedelta(0)
    assert result > after


def test_interval_coalesces_missed_slots_to_one() -> None:
    schedule = IntervalSchedule(parse_interval("1m"))
    anchor = utc(2026, 1, 1)
    now = anchor + timedelta(days=3, seconds=30)
    first = schedule.next_after(now, anchor=anchor)
    assert first == anchor + timedelta(days=3, minutes=1)
    # The next slot after that follows on the same grid: no burst of catch-up runs.
    assert schedule.next_after(first, anchor=first) == first + timedelta(minutes=1)


def test_interval_ignores_dst_and_uses_real_elapsed_time() -> None:
    schedule = IntervalSchedule(parse_interval("1h"))
    anchor = datetime(2026, 3, 29, 1, 30, tzinfo=BERLIN)  # 00:30Z
    after = datetime(2026, 3, 29, 3, 10, tzinfo=BERLIN)  # 01:10Z, just after the jump
    assert schedule.next_after(after, anchor=anchor) == utc(2026, 3, 29, 1, 30)


def test_interval_accepts_non_utc_inputs_and_returns_utc() -> None:
    schedule = IntervalSchedule(parse_interval("15m"))
    tokyo = ZoneInfo("Asia/Tokyo")
    result = schedule.next_after(
        datetime(2026, 1, 1, 9, 5, tzinfo=tokyo), anchor=datetime(2026, 1, 1, 9, tzinfo=tokyo)
    )
    assert result == utc(2026, 1, 1, 0, 15)
    assert result.tzinfo == UTC


def test_interval_properties() -> None:
    schedule = IntervalSchedule(parse_interval("90m"))
    assert schedule.kind == "interval"
    assert schedule.value == "1h30m"
    assert schedule.timezone == "UTC"
    assert schedule.describe() == "every 1h30m"


class _NoOffset(tzinfo):
    def utcoffset(self, dt: datetime | None) -> timedelta | None:
        return None

    def dst(self, dt: datetime | None) -> timedelta | None:
        return None

    def tzname(self, dt: datetime | None) -> str | None:
        return None


@pytest.mark.parametrize(
    ("schedule", "after", "anchor", "name"),
    [
        (IntervalSchedule(timedelta(seconds=30)), datetime(2026, 1, 1), None, "after"),
        (IntervalSchedule(timedelta(seconds=30)), datetime(2026, 1, 1), utc(2026, 1, 1), "after"),
        (IntervalSchedule(timedelta(seconds=30)), utc(2026, 1, 1), datetime(2026, 1, 1), "anchor"),
        (
            IntervalSchedule(timedelta(seconds=30)),
            datetime(2026, 1, 1, tzinfo=_NoOffset()),
            None,
            "after",
        ),
        (CronSchedule("* * * * *", "UTC"), datetime(2026, 1, 1), None, "after"),
        (CronSchedule("0 9 * * *", "Europe/Berlin"), datetime(2026, 1, 1), None, "after"),
    ],
)
def test_naive_datetimes_raise_value_error(
    schedule: IntervalSchedule | CronSchedule,
    after: datetime,
    anchor: datetime | None,
    name: str,
) -> None:
    with pytest.raises(ValueError, match=f"{name} must be a timezone-aware datetime"):
        schedule.next_after(after, anchor=anchor)


# --------------------------------------------------------------------------------------------
# Cron: parsing
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "expression",
    [
        "* * * * *",
        "0 9 * * *",
        "*/15 * * * *",
        "0,30 * * * *",
        "0 9-17 * * *",
        "0 9-17/2 * * 1-5",
        "0 9 * * MON-FRI",
        "0 9 * * mon,wed,fri",
        "0 0 1 JAN,JUL *",
        "0 0 1 jan-mar *",
        "59 23 31 12 *",
        "0 0 * * 7",
        "0 0 * * 0",
        "0 0 30 2 *",
        "0 0 L * *",
        "0 0 * * 1#2",
        "0 0 * * MON-SUN",
        "0 0 * * SAT-SUN",
        "*/60 * * * *",
        # 6 fields: seconds first.
        "*/10 * * * * *",
        "15 30 9 * * *",
        "0 0 0 1 1 *",
        "59 59 23 31 12 6",
        # Aliases.
        "@hourly",
        "@daily",
        "@midnight",
        "@weekly",
        "@monthly",
        "@yearly",
        "@annually",
    ],
)
def test_parse_cron_valid(expression: str) -> None:
    schedule = parse_cron(expression)
    assert isinstance(schedule, CronSchedule)
    assert schedule.expression == expression
    assert schedule.value == expression
    assert schedule.timezone == "UTC"
    assert schedule.kind == "cron"
    assert schedule.describe() == f"cron '{expression}' (UTC)"


def test_parse_cron_normalises_whitespace() -> None:
    schedule = parse_cron("  0   9 *\t* *  ", "Europe/Berlin")
    assert schedule.expression == "0 9 * * *"
    assert schedule.timezone == "Europe/Berlin"


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        ("*/10 * * * * *", utc(2026, 1, 1, 0, 0, 3), utc(2026, 1, 1, 0, 0, 10)),
        # Seconds FIRST: second 15, minute 30, hour 9.
        ("15 30 9 * * *", utc(2026, 1, 1), utc(2026, 1, 1, 9, 30, 15)),
        ("0 0 0 1 1 *", utc(2026, 5, 5), utc(2027, 1, 1)),
        ("@hourly", utc(2026, 1, 1, 10, 1), utc(2026, 1, 1, 11)),
        ("@daily", utc(2026, 1, 1, 10, 1), utc(2026, 1, 2)),
        ("@midnight", utc(2026, 1, 1, 10, 1), utc(2026, 1, 2)),
        ("@weekly", utc(2026, 1, 1, 10, 1), utc(2026, 1, 4)),  # Sunday
        ("@monthly", utc(2026, 1, 1, 10, 1), utc(2026, 2, 1)),
        ("@yearly", utc(2026, 1, 1, 10, 1), utc(2027, 1, 1)),
        ("@annually", utc(2026, 1, 1, 10, 1), utc(2027, 1, 1)),
        ("0 9 * * MON-FRI", utc(2026, 1, 2, 10), utc(2026, 1, 5, 9)),  # Fri -> Mon
        ("0 0 * * 7", utc(2026, 1, 1), utc(2026, 1, 4)),  # 7 is Sunday
        ("0,30 * * * *", utc(2026, 1, 1, 10, 0), utc(2026, 1, 1, 10, 30)),
        ("0 9-17/4 * * *", utc(2026, 1, 1, 13, 0), utc(2026, 1, 1, 17)),
        ("0 0 29 2 *", utc(2026, 1, 1), utc(2028, 2, 29)),
        # Was "5-1", which croniter wraps around; cron (and now drumline) refuses it.
        ("0-1,5-59 * * * *", utc(2026, 1, 1, 0, 1), utc(2026, 1, 1, 0, 5)),
    ],
)
def test_cron_fires_when_expected_in_utc(
    expression: str, after: datetime, expected: datetime
) -> None:
    result = parse_cron(expression).next_after(after)
    assert result == expected
    assert result is not None and result.tzinfo == UTC


@pytest.mark.parametrize(
    ("expression", "fragments"),
    [
        ("* * * *", ["'* * * *'", "it has 4 fields", "6 with seconds first"]),
        ("* * *", ["'* * *'", "it has 3 fields"]),
        ("*", ["'*'", "it has 1 fields"]),
        ("* * * * * * *", ["'* * * * * * *'", "it has 7 fields"]),
        ("60 * * * *", ["'60 * * * *'", "minute field '60'"]),
        ("* 24 * * *", ["'* 24 * * *'", "hour field '24'"]),
        ("* * 32 * *", ["'* * 32 * *'", "day-of-month field '32'"]),
        ("* * 0 * *", ["'* * 0 * *'", "day-of-month field '0'"]),
        ("* * * 13 *", ["'* * * 13 *'", "month field '13'"]),
        ("* * * 0 *", ["'* * * 0 *'", "month field '0'"]),
        ("* * * * 8", ["'* * * * 8'", "day-of-week field '8'"]),
        ("61 * * * * *", ["'61 * * * * *'", "second field '61'"]),
        ("* 60 * * * *", ["'* 60 * * * *'", "minute field '60'"]),
        ("* * 24 * * *", ["'* * 24 * * *'", "hour field '24'"]),
        ("* * * 32 * *", ["'* * * 32 * *'", "day-of-month field '32'"]),
        ("* * * * 13 *", ["'* * * * 13 *'", "month field '13'"]),
        ("* * * * * 8", ["'* * * * * 8'", "day-of-week field '8'"]),
        ("*/0 * * * *", ["'*/0 * * * *'", "minute field '*/0'"]),
        ("foo * * * *", ["'foo * * * *'", "minute field 'foo'"]),
        ("foo bar baz qux quux", ["'foo bar baz qux quux'", "minute field 'foo'"]),
        ("1-2-3 * * * *", ["'1-2-3 * * * *'", "minute field '1-2-3'"]),
        ("5,,6 * * * *", ["'5,,6 * * * *'", "minute field '5,,6'"]),
        ("0 x * * *", ["'0 x * * *'", "hour field 'x'"]),
        ("* * * JANUARY *", ["'* * * JANUARY *'", "month field 'JANUARY'"]),
        ("* * * * MON-FRX", ["'* * * * MON-FRX'", "day-of-week field 'MON-FRX'"]),
        ("* * * * 1#6", ["'* * * * 1#6'", "day-of-week field '1#6'"]),
        # Accepted (and wrapped around) by croniter; refused as cron does (issue 10).
        ("5-1 * * * *", ["'5-1 * * * *'", "minute field '5-1'", "runs backwards"]),
        ("0 0 * DEC-JAN *", ["month field 'DEC-JAN'", "runs backwards"]),
        ("0 0 * * 5-1", ["day-of-week field '5-1'", "runs backwards"]),
        ("*/61 * * * *", ["minute field '*/61'", "from 1 to 60"]),
        ("0 */25 * * *", ["hour field '*/25'", "from 1 to 24"]),
        ("*/99999999999999999999 * * * *", ["minute field", "from 1 to 60"]),
        ("0 0 1-31/" + "9" * 5000 + " * *", ["day-of-month field", "from 1 to 31"]),
        ("@fortnightly", ["'@fortnightly'", "unknown alias", "@hourly"]),
        ("@reboot", ["'@reboot'", "unknown alias"]),
        ("@HOURLY", ["'@HOURLY'", "unknown alias"]),
        ("", ["cron expression is empty"]),
        ("   ", ["cron expression is empty"]),
    ],
)
def test_parse_cron_invalid(expression: str, fragments: list[str]) -> None:
    with pytest.raises(ScheduleError) as caught:
        parse_cron(expression, "Europe/Berlin")
    message = str(caught.value)
    for fragment in fragments:
        assert fragment in message, (fragment, message)


@pytest.mark.parametrize(
    ("zone", "fragments"),
    [
        ("Mars/Olympus_Mons", ["unknown timezone 'Mars/Olympus_Mons'", "IANA"]),
        ("utc", ["unknown timezone 'utc'"]),
        ("Europe/berlin", ["unknown timezone 'Europe/berlin'"]),
        ("../../etc/passwd", ["unknown timezone '../../etc/passwd'"]),
        ("/usr/share/zoneinfo/UTC", ["unknown timezone"]),
        ("Europe/Berlin ", ["unknown timezone 'Europe/Berlin '"]),
        # Zone files that are no IANA zone (issue 10).
        ("localtime", ["unknown timezone 'localtime'"]),
        ("posixrules", ["unknown timezone 'posixrules'"]),
        ("Factory", ["unknown timezone 'Factory'"]),
        ("right/UTC", ["unknown timezone 'right/UTC'"]),
        ("posix/Europe/Berlin", ["unknown timezone 'posix/Europe/Berlin'"]),
        ("", ["timezone is empty"]),
    ],
)
def test_parse_cron_invalid_timezone(zone: str, fragments: list[str]) -> None:
    with pytest.raises(ScheduleError) as caught:
        parse_cron("0 9 * * *", zone)
    for fragment in fragments:
        assert fragment in str(caught.value)


@pytest.mark.parametrize("zone", ["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata"])
def test_parse_cron_valid_timezone(zone: str) -> None:
    schedule = parse_cron("0 9 * * *", zone)
    assert schedule.timezone == zone
    assert schedule.describe() == f"cron '0 9 * * *' ({zone})"


# --------------------------------------------------------------------------------------------
# compile_schedule and schedule_from_row
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("interval", "cron", "zone", "expected"),
    [
        ("5m", None, None, IntervalSchedule(timedelta(minutes=5))),
        ("90m", None, None, IntervalSchedule(timedelta(minutes=90))),
        (None, "0 9 * * *", None, CronSchedule("0 9 * * *", "UTC")),
        (None, "0 9 * * *", "Asia/Tokyo", CronSchedule("0 9 * * *", "Asia/Tokyo")),
        (None, "@daily", "UTC", CronSchedule("@daily", "UTC")),
        (None, None, None, None),
    ],
)
def test_compile_schedule_valid(
    interval: str | None,
    cron: str | None,
    zone: str | None,
    expected: IntervalSchedule | CronSchedule | None,
) -> None:
    assert compile_schedule(interval=interval, cron=cron, timezone=zone) == expected


@pytest.mark.parametrize(
    ("interval", "cron", "zone", "fragment"),
    [
        ("5m", "* * * * *", None, "either interval or cron, not both"),
        ("5m", "* * * * *", "UTC", "either interval or cron, not both"),
        ("5m", None, "UTC", "timezone applies to cron schedules only"),
        ("5m", None, "Europe/Berlin", "timezone applies to cron schedules only"),
        (None, None, "UTC", "no cron schedule to apply it to"),
        (None, "0 9 * * *", "Mars/Olympus", "unknown timezone 'Mars/Olympus'"),
        (None, "0 9 * * *", "", "timezone is empty"),
        (None, "61 * * * *", "UTC", "minute field '61'"),
        ("5x", None, None, "interval '5x' is not understood"),
        ("0s", None, None, "interval '0s' is zero"),
    ],
)
def test_compile_schedule_invalid(
    interval: str | None, cron: str | None, zone: str | None, fragment: str
) -> None:
    with pytest.raises(ScheduleError) as caught:
        compile_schedule(interval=interval, cron=cron, timezone=zone)
    assert fragment in str(caught.value)


@pytest.mark.parametrize(
    "schedule",
    [
        IntervalSchedule(timedelta(seconds=30)),
        IntervalSchedule(timedelta(minutes=90)),
        IntervalSchedule(timedelta(weeks=1, days=2, hours=3, minutes=4, seconds=5)),
        CronSchedule("0 9 * * *", "UTC"),
        CronSchedule("30 2 * * *", "Europe/Berlin"),
        CronSchedule("*/10 * * * * *", "America/New_York"),
        CronSchedule("@hourly", "Asia/Tokyo"),
        CronSchedule("0 0 30 2 *", "UTC"),
    ],
)
def test_schedule_from_row_round_trip(schedule: IntervalSchedule | CronSchedule) -> None:
    rebuilt = schedule_from_row(schedule.kind, schedule.value, schedule.timezone)
    assert rebuilt == schedule
    assert type(rebuilt) is type(schedule)


def test_schedule_from_row_round_trip_via_compile() -> None:
    compiled = compile_schedule(interval="90m", cron=None, timezone=None)
    assert compiled is not None
    assert (compiled.kind, compiled.value, compiled.timezone) == ("interval", "1h30m", "UTC")
    assert schedule_from_row(compiled.kind, compiled.value, compiled.timezone) == compiled


def test_a_manual_row_is_a_schedule_that_is_never_due() -> None:
    """Callers hold a schedule for every row, manual included, and never ask which kind."""
    manual = schedule_from_row("manual", "", "UTC")
    assert manual == ManualSchedule()
    assert (manual.kind, manual.value, manual.timezone) == ("manual", "", "UTC")
    after = utc(2026, 3, 1)
    assert manual.next_after(after) is None
    assert manual.next_after(after, anchor=after) is None
    assert manual.describe() == manual.describe(exhausted=True) == "manual only"


def test_describe_says_when_a_schedule_has_run_out() -> None:
    never = CronSchedule("0 0 30 2 *", "UTC")
    assert never.describe(exhausted=True) == "cron '0 0 30 2 *' (UTC), exhausted (never runs again)"
    every = IntervalSchedule(timedelta(seconds=30))
    assert every.describe(exhausted=True) == "every 30s, exhausted (never runs again)"


@pytest.mark.parametrize(
    ("kind", "value", "zone", "fragment"),
    [
        ("weekly", "1w", "UTC", "unknown schedule type 'weekly'"),
        ("", "5m", "UTC", "unknown schedule type ''"),
        ("Interval", "5m", "UTC", "unknown schedule type 'Interval'"),
        ("interval", "5x", "UTC", "interval '5x'"),
        ("cron", "61 * * * *", "UTC", "minute field '61'"),
        ("cron", "0 9 * * *", "Nowhere/City", "unknown timezone 'Nowhere/City'"),
    ],
)
def test_schedule_from_row_errors(kind: str, value: str, zone: str, fragment: str) -> None:
    with pytest.raises(ScheduleError) as caught:
        schedule_from_row(kind, value, zone)
    assert fragment in str(caught.value)


# --------------------------------------------------------------------------------------------
# Cron: no future occurrence, time zones
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "zone"),
    [
        ("0 0 30 2 *", "UTC"),
        ("0 0 30 2 *", "Europe/Berlin"),
        ("0 0 31 4 *", "America/New_York"),
        ("0 0 31 2,4,6 *", "UTC"),
        ("0 0 0 30 2 *", "UTC"),
    ],
)
def test_cron_without_future_occurrence_is_none(expression: str, zone: str) -> None:
    assert parse_cron(expression, zone).next_after(utc(2026, 1, 1)) is None


def test_frequent_six_field_cron_steps_in_seconds() -> None:
    schedule = parse_cron("*/5 * * * * *", "Europe/Berlin")
    after = utc(2026, 10, 24, 12)
    assert schedule.next_after(after) == after + timedelta(seconds=5)


def test_tokyo_nine_am_is_midnight_utc() -> None:
    schedule = parse_cron("0 9 * * *", "Asia/Tokyo")
    times = fire_times(schedule, utc(2026, 3, 7, 12), utc(2026, 3, 10, 12))
    assert times == [utc(2026, 3, 8), utc(2026, 3, 9), utc(2026, 3, 10)]


@pytest.mark.parametrize(
    ("expression", "zone", "after", "expected"),
    [
        ("0 9 * * *", "Asia/Kolkata", utc(2026, 1, 1), utc(2026, 1, 1, 3, 30)),
        ("0 9 * * *", "America/New_York", utc(2026, 1, 1), utc(2026, 1, 1, 14)),
        ("0 9 * * *", "America/New_York", utc(2026, 7, 1), utc(2026, 7, 1, 13)),
        ("0 9 * * *", "Europe/Berlin", utc(2026, 7, 1), utc(2026, 7, 1, 7)),
        ("0 0 * * *", "Pacific/Kiritimati", utc(2026, 1, 1), utc(2026, 1, 1, 10)),
        ("0 9 * * *", "Asia/Tokyo", datetime(2026, 1, 1, 8, 59, tzinfo=BERLIN), utc(2026, 1, 2)),
    ],
)
def test_cron_in_time_zones(
    expression: str, zone: str, after: datetime, expected: datetime
) -> None:
    assert parse_cron(expression, zone).next_after(after) == expected


# --------------------------------------------------------------------------------------------
# Cron across DST
# --------------------------------------------------------------------------------------------

# (zone, expression, local transition day, the single expected firing on that day)
FIXED_HOUR_DST_CASES = [
    # Berlin spring forward: 02:00 CET -> 03:00 CEST at 01:00Z; 02:30 does not exist.
    ("Europe/Berlin", "30 2 * * *", (2026, 3, 29), utc(2026, 3, 29, 1)),
    ("Europe/Berlin", "0 2 * * *", (2026, 3, 29), utc(2026, 3, 29, 1)),
    ("Europe/Berlin", "59 2 * * *", (2026, 3, 29), utc(2026, 3, 29, 1)),
    # Berlin fall back: 03:00 CEST -> 02:00 CET at 01:00Z; 02:30 happens twice, run the first.
    ("Europe/Berlin", "30 2 * * *", (2026, 10, 25), utc(2026, 10, 25, 0, 30)),
    # New York spring forward: 02:00 EST -> 03:00 EDT at 07:00Z.
    ("America/New_York", "30 2 * * *", (2026, 3, 8), utc(2026, 3, 8, 7)),
    # New York fall back: 02:00 EDT -> 01:00 EST at 06:00Z; 01:30 happens twice.
    ("America/New_York", "30 1 * * *", (2026, 11, 1), utc(2026, 11, 1, 5, 30)),
    ("America/New_York", "0 1 * * *", (2026, 11, 1), utc(2026, 11, 1, 5)),
    # Not in the repeated hour: just once, in EST.
    ("America/New_York", "30 2 * * *", (2026, 11, 1), utc(2026, 11, 1, 7, 30)),
    # 6 fields, seconds first, in the gap.
    ("Europe/Berlin", "15 30 2 * * *", (2026, 3, 29), utc(2026, 3, 29, 1)),
    ("America/New_York", "15 30 1 * * *", (2026, 11, 1), utc(2026, 11, 1, 5, 30, 15)),
]


@pytest.mark.parametrize(("zone", "expression", "day", "expected"), FIXED_HOUR_DST_CASES)
def test_fixed_hour_job_runs_exactly_once_on_transition_day(
    zone: str, expression: str, day: tuple[int, int, int], expected: datetime
) -> None:
    schedule = parse_cron(expression, zone)
    tz = ZoneInfo(zone)
    start = datetime(*day, tzinfo=tz) - timedelta(days=2)
    end = datetime(*day, tzinfo=tz) + timedelta(days=2)
    times = fire_times(schedule, start, end)
    on_day = [t for t in times if t.astimezone(tz).date() == datetime(*day).date()]
    assert on_day == [expected]
    # One firing per local day around the transition, strictly increasing.
    assert len(times) == 4
    assert times == sorted(set(times))
    assert len({t.astimezone(tz).date() for t in times}) == 4


@pytest.mark.parametrize(
    ("zone", "expression", "after", "expected"),
    [
        # Right before the gap instant -> the gap instant; at it -> the next day.
        ("Europe/Berlin", "30 2 * * *", utc(2026, 3, 29, 0, 59, 59), utc(2026, 3, 29, 1)),
        ("Europe/Berlin", "30 2 * * *", utc(2026, 3, 29, 1), utc(2026, 3, 30, 0, 30)),
        ("Europe/Berlin", "30 2 * * *", utc(2026, 3, 29, 0, 30), utc(2026, 3, 29, 1)),
        # After the first pass of the repeated hour, the second pass does NOT fire.
        ("Europe/Berlin", "30 2 * * *", utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)),
        ("Europe/Berlin", "30 2 * * *", utc(2026, 10, 25, 1, 10), utc(2026, 10, 26, 1, 30)),
        ("America/New_York", "30 1 * * *", utc(2026, 11, 1, 5, 30), utc(2026, 11, 2, 6, 30)),
        ("America/New_York", "30 2 * * *", utc(2026, 3, 8, 6, 59), utc(2026, 3, 8, 7)),
        ("America/New_York", "30 2 * * *", utc(2026, 3, 8, 7), utc(2026, 3, 9, 6, 30)),
    ],
)
def test_fixed_hour_job_next_after_around_transition(
    zone: str, expression: str, after: datetime, expected: datetime
) -> None:
    assert parse_cron(expression, zone).next_after(after) == expected


@pytest.mark.parametrize(
    ("zone", "transition"),
    [
        ("Europe/Berlin", utc(2026, 3, 29, 1)),
        ("Europe/Berlin", utc(2026, 10, 25, 1)),
        ("America/New_York", utc(2026, 3, 8, 7)),
        ("America/New_York", utc(2026, 11, 1, 6)),
    ],
)
def test_every_fifteen_minutes_keeps_real_elapsed_time(zone: str, transition: datetime) -> None:
    schedule = parse_cron("*/15 * * * *", zone)
    start = transition - timedelta(hours=3)
    times = fire_times(schedule, start, transition + timedelta(hours=3))
    assert len(times) == 24
    assert times[0] == start + timedelta(minutes=15)
    assert all(b - a == timedelta(minutes=15) for a, b in pairwise(times))
    assert transition in times


@pytest.mark.parametrize(
    ("zone", "transition", "repeated_hour"),
    [
        ("Europe/Berlin", utc(2026, 10, 25, 1), 2),
        ("America/New_York", utc(2026, 11, 1, 6), 1),
    ],
)
def test_wildcard_jobs_fire_in_both_passes_of_the_repeated_hour(
    zone: str, transition: datetime, repeated_hour: int
) -> None:
    tz = ZoneInfo(zone)
    hourly = fire_times(
        parse_cron("30 * * * *", zone),
        transition - timedelta(hours=3),
        transition + timedelta(hours=3),
    )
    assert all(b - a == timedelta(hours=1) for a, b in pairwise(hourly))
    assert len(hourly) == 6
    repeated = [t for t in hourly if t.astimezone(tz).hour == repeated_hour]
    assert repeated == [transition - timedelta(minutes=30), transition + timedelta(minutes=30)]
    assert [t.astimezone(tz).fold for t in repeated] == [0, 1]

    quarter = fire_times(
        parse_cron("*/15 * * * *", zone),
        transition - timedelta(hours=1, minutes=1),
        transition + timedelta(hours=1),
    )
    walls = [t.astimezone(tz).strftime("%H:%M") for t in quarter]
    # The local quarter hours of the repeated hour each appear twice.
    for minute in ("00", "15", "30", "45"):
        assert walls.count(f"{repeated_hour:02d}:{minute}") == 2


@pytest.mark.parametrize(
    ("zone", "transition", "skipped_hour"),
    [
        ("Europe/Berlin", utc(2026, 3, 29, 1), 2),
        ("America/New_York", utc(2026, 3, 8, 7), 2),
    ],
)
def test_wildcard_jobs_skip_the_missing_hour(
    zone: str, transition: datetime, skipped_hour: int
) -> None:
    tz = ZoneInfo(zone)
    hourly = fire_times(
        parse_cron("30 * * * *", zone),
        transition - timedelta(hours=3),
        transition + timedelta(hours=3),
    )
    assert len(hourly) == 6
    assert all(b - a == timedelta(hours=1) for a, b in pairwise(hourly))
    assert skipped_hour not in {t.astimezone(tz).hour for t in hourly}
    # A wildcard-minute job with a fixed hour inside the gap does not run that day at all.
    gap_only = parse_cron("*/15 2 * * *", zone)
    day_start = datetime.combine(transition.astimezone(tz).date(), datetime.min.time(), tz)
    assert gap_only.next_after(day_start).astimezone(tz).date() > day_start.date()  # type: ignore[union-attr]


def test_cron_result_is_utc_for_non_utc_after() -> None:
    result = parse_cron("0 9 * * *", "Asia/Tokyo").next_after(datetime(2026, 1, 1, tzinfo=BERLIN))
    assert result == utc(2026, 1, 1)
    assert result is not None and result.tzinfo == UTC


def test_cron_ignores_anchor() -> None:
    schedule = parse_cron("0 9 * * *")
    after = utc(2026, 1, 1, 10)
    assert schedule.next_after(after, anchor=utc(2020, 1, 1, 0, 7)) == utc(2026, 1, 2, 9)


# --------------------------------------------------------------------------------------------
# Property tests
# --------------------------------------------------------------------------------------------

PROPERTY_ZONES = [
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Asia/Tokyo",
    "Asia/Kolkata",
    "Australia/Sydney",
    "Australia/Lord_Howe",  # 30-minute DST shift
    "America/Havana",  # DST at midnight
    "America/Santiago",  # southern hemisphere, midnight transitions
    "Pacific/Chatham",  # +12:45 / +13:45
]


def _transitions(zone: ZoneInfo, years: range) -> list[datetime]:
    """UTC instants (whole minutes) at which the zone's UTC offset changes."""
    found = []
    cursor = datetime(years.start, 1, 1, tzinfo=UTC)
    end = datetime(years.stop, 1, 1, tzinfo=UTC)
    step = timedelta(hours=6)
    while cursor < end:
        nxt = cursor + step
        if cursor.astimezone(zone).utcoffset() != nxt.astimezone(zone).utcoffset():
            low, high = cursor, nxt
            while high - low > MINUTE:
                middle = low + (high - low) // 2
                middle = middle.replace(second=0, microsecond=0)
                if middle.astimezone(zone).utcoffset() == low.astimezone(zone).utcoffset():
                    low = middle
                else:
                    high = middle
            found.append(high)
        cursor = nxt
    return found


TRANSITIONS = {name: _transitions(ZoneInfo(name), range(2025, 2028)) for name in PROPERTY_ZONES}


def test_transition_table_matches_known_dates() -> None:
    assert utc(2026, 3, 29, 1) in TRANSITIONS["Europe/Berlin"]
    assert utc(2026, 10, 25, 1) in TRANSITIONS["Europe/Berlin"]
    assert utc(2026, 3, 8, 7) in TRANSITIONS["America/New_York"]
    assert utc(2026, 11, 1, 6) in TRANSITIONS["America/New_York"]
    assert TRANSITIONS["UTC"] == []
    assert TRANSITIONS["Asia/Tokyo"] == []


def _instants(zone: str) -> st.SearchStrategy[datetime]:
    """Aware instants, often near one of the zone's DST transitions, in assorted zones."""
    anywhere = st.datetimes(
        min_value=datetime(2025, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC)
    )
    strategies = [anywhere]
    if TRANSITIONS[zone]:
        near = st.builds(
            lambda t, seconds, micro: t + timedelta(seconds=seconds, microseconds=micro),
            st.sampled_from(TRANSITIONS[zone]),
            st.integers(min_value=-36 * 3600, max_value=36 * 3600),
            st.sampled_from([0, 0, 0, 1, 999_999]),
        )
        exact = st.builds(
            lambda t, minutes: t + timedelta(minutes=minutes),
            st.sampled_from(TRANSITIONS[zone]),
            st.integers(min_value=-180, max_value=180),
        )
        strategies += [near, exact]
    shown_in = st.sampled_from(
        [UTC, BERLIN, NEW_YORK, ZoneInfo(zone), timezone(timedelta(hours=-3))]
    )
    return st.builds(lambda t, z: t.astimezone(z), st.one_of(strategies), shown_in)


ZONE_AND_INSTANT = {zone: st.tuples(st.just(zone), _instants(zone)) for zone in PROPERTY_ZONES}
zone_and_instant = st.sampled_from(PROPERTY_ZONES).flatmap(ZONE_AND_INSTANT.__getitem__)

minute_fields = st.sampled_from(["*", "*/15", "0", "30", "0,30", "5-10", "*/7", "45", "59"])
hour_fields = st.sampled_from(["*", "2", "1", "0", "*/6", "1-3", "2,14", "23", "3"])
dom_fields = st.sampled_from(["*", "*", "*", "1", "15", "1-7", "29", "31"])
month_fields = st.sampled_from(["*", "*", "*", "3", "10,11", "2", "4"])
dow_fields = st.sampled_from(["*", "*", "*", "MON-FRI", "0", "6", "1"])
five_field_crons = st.builds(
    lambda *fields: " ".join(fields),
    minute_fields,
    hour_fields,
    dom_fields,
    month_fields,
    dow_fields,
)
six_field_crons = st.builds(
    lambda sec, minute, hour: f"{sec} {minute} {hour} * * *",
    st.sampled_from(["0", "15,45", "30", "0,30", "59"]),
    minute_fields,
    hour_fields,
)


class _Matcher:
    """An independent, cheap cron matcher on wall-clock times (croniter's expanded fields)."""

    def __init__(self, expression: str) -> None:
        fields = expression.split()
        self.seconds_first = len(fields) == 6
        expanded = croniter(expression, second_at_beginning=self.seconds_first).expanded
        if self.seconds_first:  # croniter keeps the seconds field last internally
            *expanded, seconds = expanded
            self.seconds = self._values(seconds, range(60))
        else:
            self.seconds = {0}
        minutes, hours, doms, months, dows = expanded
        self.minutes = self._values(minutes, range(60))
        self.hours = self._values(hours, range(24))
        self.dom_star = doms == ["*"]
        self.dow_star = dows == ["*"]
        self.doms = self._values(doms, range(1, 32))
        self.months = self._values(months, range(1, 13))
        self.dows = {d % 7 for d in self._values(dows, range(7))}
        minute_field, hour_field = (fields[1], fields[2]) if self.seconds_first else fields[:2]
        self.wildcard = minute_field.startswith("*") or hour_field.startswith("*")

    @staticmethod
    def _values(values: list[str], full: range) -> set[int]:
        return set(full) if values == ["*"] else {int(v) for v in values}

    def minute_matches(self, wall: datetime) -> bool:
        """Whether the wall-clock minute (ignoring seconds) matches."""
        if wall.minute not in self.minutes or wall.hour not in self.hours:
            return False
        if wall.month not in self.months:
            return False
        dom_ok = wall.day in self.doms
        dow_ok = (wall.weekday() + 1) % 7 in self.dows
        if self.dom_star and self.dow_star:
            return True
        if self.dom_star:
            return dow_ok
        if self.dow_star:
            return dom_ok
        return dom_ok or dow_ok

    def firings(self, zone: ZoneInfo, low: datetime, high: datetime) -> Iterator[datetime]:
        """Every firing in (low, high] by stepping through UTC minutes, with the DST rules."""
        minute = low.astimezone(UTC).replace(second=0, microsecond=0)
        previous_offset = (minute - MINUTE).astimezone(zone).utcoffset()
        assert previous_offset is not None
        while minute <= high:
            local = minute.astimezone(zone)
            offset = local.utcoffset()
            assert offset is not None
            candidates: list[datetime] = []
            if offset > previous_offset and not self.wildcard:
                # Spring forward at `minute`: fixed jobs due in the gap run at this instant.
                wall = (minute - MINUTE).astimezone(zone).replace(tzinfo=None) + MINUTE
                gap_end = local.replace(tzinfo=None)
                while wall < gap_end:
                    if self.minute_matches(wall):
                        candidates.append(minute)
                        break
                    wall += MINUTE
            second_pass = local.fold == 1 and local.replace(fold=0).utcoffset() != offset
            if self.minute_matches(local) and not (second_pass and not self.wildcard):
                candidates += [minute + timedelta(seconds=s) for s in sorted(self.seconds)]
            for candidate in candidates:
                if low < candidate <= high:
                    yield candidate
            previous_offset = offset
            minute += MINUTE


def _on_schedule(expression: str, zone: ZoneInfo, instant: datetime) -> bool:
    wall = instant.astimezone(zone).replace(tzinfo=None)
    seconds_first = len(expression.split()) == 6
    if croniter.match(expression, wall, second_at_beginning=seconds_first):
        return True
    # Otherwise it must be a spring-forward instant standing in for a fixed job's gap time.
    before = (instant - timedelta(seconds=1)).astimezone(zone).utcoffset()
    return before is not None and before < instant.astimezone(zone).utcoffset()  # type: ignore[operator]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(expression=five_field_crons, data=zone_and_instant)
def test_property_cron_next_after_is_the_first_firing(
    expression: str, data: tuple[str, datetime]
) -> None:
    zone_name, after = data
    zone = ZoneInfo(zone_name)
    schedule = parse_cron(expression, zone_name)
    matcher = _Matcher(expression)
    result = schedule.next_after(after)
    window_end = after + timedelta(days=2)
    if result is not None:
        assert result > after
        assert result.tzinfo == UTC
        assert _on_schedule(expression, zone, result), (expression, zone_name, after, result)
        if not croniter.match(expression, result.astimezone(zone).replace(tzinfo=None)):
            assert not matcher.wildcard, "only fixed-hour jobs fire at a transition instant"
        window_end = min(window_end, result)
    expected = next(matcher.firings(zone, after, window_end), None)
    if result is not None and result <= after + timedelta(days=2):
        assert expected == result, (expression, zone_name, after, result, expected)
    else:
        assert expected is None, (expression, zone_name, after, result, expected)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(expression=six_field_crons, data=zone_and_instant)
def test_property_six_field_cron_next_after_is_the_first_firing(
    expression: str, data: tuple[str, datetime]
) -> None:
    zone_name, after = data
    zone = ZoneInfo(zone_name)
    schedule = parse_cron(expression, zone_name)
    matcher = _Matcher(expression)
    result = schedule.next_after(after)
    assert result is not None  # daily at least
    assert result > after
    assert _on_schedule(expression, zone, result), (expression, zone_name, after, result)
    window_end = min(result, after + timedelta(days=1, hours=2))
    expected = next(matcher.firings(zone, after, window_end), None)
    if result <= after + timedelta(days=1, hours=2):
        assert expected == result, (expression, zone_name, after, result, expected)


@settings(max_examples=100, deadline=None)
@given(
    expression=five_field_crons,
    wall=st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2028, 12, 31)),
)
def test_property_reference_matcher_agrees_with_croniter(expression: str, wall: datetime) -> None:
    """Guards the oracle used above: it must agree with croniter on wall-clock minutes."""
    wall = wall.replace(second=0, microsecond=0)
    assert _Matcher(expression).minute_matches(wall) == croniter.match(expression, wall)


@settings(max_examples=40, deadline=None)
@given(expression=five_field_crons, data=zone_and_instant)
def test_property_chained_cron_firings_increase(
    expression: str, data: tuple[str, datetime]
) -> None:
    zone_name, after = data
    schedule = parse_cron(expression, zone_name)
    cursor: datetime | None = after
    previous = after
    for _ in range(4):
        assert cursor is not None
        cursor = schedule.next_after(cursor)
        if cursor is None:
            break
        assert cursor > previous
        previous = cursor


intervals = st.integers(min_value=1, max_value=int(MAX_INTERVAL.total_seconds())).map(
    lambda s: parse_interval(format_interval(timedelta(seconds=s)))
)
aware_instants = st.datetimes(
    min_value=datetime(2000, 1, 1),
    max_value=datetime(2100, 1, 1),
    timezones=st.sampled_from([UTC, BERLIN, NEW_YORK, ZoneInfo("Australia/Lord_Howe")]),
)


@settings(max_examples=200, deadline=None)
@given(every=intervals, anchor=aware_instants, after=aware_instants)
def test_property_interval_lands_on_the_grid(
    every: timedelta, anchor: datetime, after: datetime
) -> None:
    schedule = IntervalSchedule(every)
    result = schedule.next_after(after, anchor=anchor)
    # Compare in UTC: == between zones is always False for an ambiguous wall time (PEP 495).
    anchor = anchor.astimezone(UTC)
    assert result > after
    assert result.tzinfo == UTC
    assert (result - anchor) % every == timedelta(0)
    assert result >= anchor
    # No grid point between `after` and the result.
    assert result == anchor or result - every <= after


@settings(max_examples=150, deadline=None)
@given(
    every=st.integers(min_value=1, max_value=7 * 86400).map(lambda s: timedelta(seconds=s)),
    anchor=aware_instants,
    steps=st.integers(min_value=-3, max_value=500),
    fraction=st.floats(min_value=0, max_value=1, exclude_max=True),
)
def test_property_interval_matches_stepping_the_grid(
    every: timedelta, anchor: datetime, steps: int, fraction: float
) -> None:
    anchor = anchor.astimezone(UTC)  # real elapsed time, not wall-clock arithmetic
    after = anchor + steps * every + every * fraction
    expected = anchor
    while expected <= after:
        expected += every
    shown = after.astimezone(NEW_YORK)
    assert IntervalSchedule(every).next_after(shown, anchor=anchor) == expected


@settings(max_examples=100, deadline=None)
@given(every=intervals, after=aware_instants)
def test_property_interval_without_anchor_is_after_plus_every(
    every: timedelta, after: datetime
) -> None:
    assert IntervalSchedule(every).next_after(after) == after.astimezone(UTC) + every


# --- the bounded next-run search (issue 10) ---------------------------------------------------

HORIZON = timedelta(days=366 * HORIZON_YEARS)
# Crons whose every match can fall in an hour skipped by DST somewhere (March/April, October,
# second or last Sunday, hours 0-3), next to ordinary ones: where the old search spun for years.
dst_crons = st.builds(
    lambda minute, hour, month, day: f"{minute} {hour} {day[0]} {month} {day[1]}",
    st.sampled_from(["*", "*/5", "30", "0", "59"]),
    st.sampled_from(["2", "0", "1", "3", "*", "2,3"]),
    st.sampled_from(["3", "10", "4", "9", "3,10", "*"]),
    st.sampled_from([("*", "0#2"), ("*", "L0"), ("*", "0#1"), ("8-14", "*"), ("*", "*")]),
)
any_crons = st.one_of(dst_crons, five_field_crons)
DST_ZONES = [*PROPERTY_ZONES, "America/Asuncion", "Europe/Dublin", "Africa/Casablanca"]
far_instants = st.datetimes(
    min_value=datetime(1980, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
)


class _Unbounded:
    """The search as it was before issue 10 (minus its wall-clock limit), counting its steps:
    the reference the bounded one must agree with wherever this one ends in `budget` steps."""

    MARGIN = timedelta(hours=3)

    def __init__(self, schedule: CronSchedule, budget: int) -> None:
        self.schedule, self.zone, self.budget = schedule, ZoneInfo(schedule.timezone), budget
        fields = schedule.expression.split()
        self.wildcard = fields[0].startswith("*") or fields[1].startswith("*")
        self.expression = " ".join(fields)

    def next_after(self, after: datetime) -> tuple[bool, datetime | None]:
        """(whether it ended within the budget, its answer)."""
        after, zone = after.astimezone(UTC), self.zone
        wall_start = after.astimezone(zone).replace(tzinfo=None)
        if not self._steady(after):
            wall_start -= self.MARGIN
        walls = croniter(self.expression, wall_start, max_years_between_matches=HORIZON_YEARS)
        best: datetime | None = None
        for _ in range(self.budget):
            try:
                wall: datetime = walls.get_next(datetime)
            except (CroniterBadDateError, OverflowError, ValueError):
                return True, best
            if best is not None and (
                self._steady(best)
                or wall - self.MARGIN > best.astimezone(zone).replace(tzinfo=None)
            ):
                return True, best
            for instant in self._instants(wall):
                if instant > after and (best is None or instant < best):
                    best = instant
        return False, None

    def _steady(self, instant: datetime) -> bool:
        before = (instant - self.MARGIN).astimezone(self.zone).utcoffset()
        return before == (instant + self.MARGIN).astimezone(self.zone).utcoffset()

    def _instants(self, wall: datetime) -> list[datetime]:
        first, second = (wall.replace(tzinfo=self.zone, fold=fold) for fold in (0, 1))
        if first.utcoffset() == second.utcoffset():
            return [first.astimezone(UTC)]
        low, high = sorted((first.astimezone(UTC), second.astimezone(UTC)))
        if first.astimezone(UTC).astimezone(self.zone).replace(tzinfo=None) == wall:
            return [low, high] if self.wildcard else [low]
        if self.wildcard:
            return []
        while high - low > timedelta(seconds=1):
            middle = low + (high - low) / 2
            if middle.astimezone(self.zone).utcoffset() == low.astimezone(self.zone).utcoffset():
                low = middle
            else:
                high = middle
        return [high.replace(microsecond=0)]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(expression=any_crons, zone=st.sampled_from(DST_ZONES), after=far_instants)
def test_property_bounded_search_is_fast_and_within_the_horizon(
    expression: str, zone: str, after: datetime
) -> None:
    schedule = parse_cron(expression, zone)
    started = time.perf_counter()
    result = schedule.next_after(after)
    elapsed = time.perf_counter() - started
    assert elapsed < 0.5, (expression, zone, after, elapsed)  # ~30 ms at worst when idle
    if result is not None:
        assert after < result <= after + HORIZON


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(expression=any_crons, data=zone_and_instant)
def test_property_bounded_search_agrees_with_the_unbounded_one(
    expression: str, data: tuple[str, datetime]
) -> None:
    zone, after = data
    schedule = parse_cron(expression, zone)
    ended, expected = _Unbounded(schedule, budget=5_000).next_after(after)
    result = schedule.next_after(after)
    if ended and (expected is None or expected <= after + HORIZON):
        assert result == expected, (expression, zone, after, result, expected)
    elif ended:  # the old search found a firing beyond the horizon
        assert result is None


@pytest.mark.parametrize(
    ("expression", "zone"),
    [
        ("* 2 * 3 0#2", "America/New_York"),  # every match in the hour skipped in March
        ("* 2 * 3 L0", "Europe/Berlin"),
        ("*/5 2 * 3 L0", "Europe/Berlin"),
        ("0 0 30 2 *", "UTC"),
    ],
)
def test_a_cron_that_never_fires_answers_none_in_milliseconds(expression: str, zone: str) -> None:
    schedule = parse_cron(expression, zone)
    started = time.perf_counter()
    assert schedule.next_after(utc(2026, 1, 1)) is None
    assert time.perf_counter() - started < 0.5


def test_a_fixed_time_in_the_skipped_hour_still_fires_at_the_change() -> None:
    # Same days as above, but a fixed minute and hour: cron runs it right after the change.
    schedule = parse_cron("30 2 * 3 L0", "Europe/Berlin")
    assert schedule.next_after(utc(2026, 1, 1)) == utc(2026, 3, 29, 1)


def test_search_near_the_end_of_time_says_never_instead_of_overflowing() -> None:
    schedule = parse_cron("* * * * *", "Europe/Berlin")
    assert schedule.next_after(datetime(9999, 12, 31, 23, 59, tzinfo=UTC)) is None
    assert schedule.next_after(datetime(9960, 1, 1, tzinfo=UTC)) is not None

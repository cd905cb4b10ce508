"""`drumline validate`: check definition files offline and show when producers would fire."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import click

from models.definitions import WorkflowDefinition, load_definition_files
from models.errors import DefinitionError
from models.fire_times import upcoming
from models.schedule_entries import CronEntry
from models.schedule_rules import RulesSchedule
from models.schedules import CronSchedule, ManualSchedule, Schedule
from workers.cli.context import json_option, load_settings, print_json
from workers.registry import load_producer_modules, registered_names

# `--after`'s range: fire times up to `--next` intervals of a year later stay far from the
# end of datetime (9999), where the schedule arithmetic would overflow.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(3000, 1, 1, tzinfo=UTC)


class InstantType(click.ParamType[datetime]):
    """An ISO 8601 instant with a time zone (or Z); a naive time would be ambiguous."""

    name = "ISO8601"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> datetime:
        if isinstance(value, datetime):
            return value
        try:
            instant = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            self.fail(
                f"{value!r} is not an ISO 8601 instant (e.g. 2026-03-01T12:00:00Z)", param, ctx
            )
        if instant.tzinfo is None:
            self.fail(f"{value!r} has no time zone: add Z or an offset like +01:00", param, ctx)
        if not EARLIEST <= instant < LATEST:  # compared before astimezone can overflow
            self.fail(
                f"{value!r} is out of range: use an instant from {EARLIEST:%Y-%m-%d} to "
                f"before {LATEST:%Y-%m-%d}",
                param,
                ctx,
            )
        return instant.astimezone(UTC)


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--next",
    "count",
    type=click.IntRange(1, 1000),
    default=5,
    show_default=True,
    help="How many fire times to show per producer (at most 1000).",
)
@click.option(
    "--after",
    type=InstantType(),
    default=None,
    help="Count fire times from this instant (default: now; 1970 to 2999).",
)
@json_option
def validate(files: tuple[Path, ...], count: int, after: datetime | None, as_json: bool) -> None:
    """Check workflow definition FILES without touching Redis or the database.

    The producers named by `run:` must be registered: the built-ins and the modules listed in
    DRUMLINE_PRODUCER_MODULES.
    """
    settings = load_settings()
    load_producer_modules(settings.producer_modules)
    start = after or datetime.now(UTC)
    try:
        definitions = load_definition_files(
            files, known_producers=registered_names(), max_timeout=settings.max_timeout
        )
    except DefinitionError as error:
        if as_json:
            print_json(error.to_json())
        else:
            for problem in error.problems:
                click.echo(str(problem), err=True)
        sys.exit(1)
    report = [_workflow_report(definition, start, count) for definition in definitions]
    if as_json:
        print_json({"workflows": report})
        return
    for workflow in report:
        _print_workflow(workflow)


def _workflow_report(definition: WorkflowDefinition, start: datetime, count: int) -> dict[str, Any]:
    producers = []
    for name, producer in definition.producers.items():
        schedule = producer.schedule or ManualSchedule()
        fire_times = upcoming(schedule, start, count)
        producers.append(
            {
                "name": name,
                "run": producer.run,
                "schedule": schedule.describe(exhausted=not fire_times),
                "timezone": schedule.timezone,
                "policy": producer.slot_policy.describe(),
                "policies": producer.slot_policy.to_json(),
                "next": [moment.isoformat() for moment in fire_times],
                "dst": _dst_notes(schedule, start, count),
            }
        )
    return {"name": definition.name, "producers": producers}


def _dst_notes(schedule: Schedule, start: datetime, count: int) -> list[dict[str, Any]]:
    """Each fire time a DST change moved, and each wall time it removed, with the rule."""
    if isinstance(schedule, CronSchedule):
        schedule = RulesSchedule((CronEntry(schedule),))  # the same fire times, with notes
    if not isinstance(schedule, RulesSchedule):
        return []
    return [
        {
            "at": None if line.at is None else line.at.isoformat(),
            "wall": None if line.wall is None else line.wall.isoformat(),
            "timezone": line.timezone,
            "note": note,
        }
        for line in schedule.fire_times(start, count)
        for note in line.notes
    ]


def _print_workflow(workflow: dict[str, Any]) -> None:
    click.echo(f"{workflow['name']}: valid, {len(workflow['producers'])} producer(s)")
    for producer in workflow["producers"]:
        click.echo(f"  {producer['name']} ({producer['run']}): {producer['schedule']}")
        if producer["policies"]:  # the defaults go without saying
            click.echo(f"    policy: {producer['policy']}")
        zone = ZoneInfo(producer["timezone"])
        notes: dict[str | None, list[str]] = {}
        for note in producer["dst"]:
            notes.setdefault(note["at"], []).append(note["note"])
        lines: list[tuple[datetime, str]] = []
        for text in producer["next"]:
            moment = datetime.fromisoformat(text)
            local = moment.astimezone(zone)
            suffix = "" if producer["timezone"] == "UTC" else f"  ({local.isoformat()} {zone.key})"
            marks = "".join(f"  [DST {note}]" for note in notes.get(text, ()))
            lines.append((moment, f"    {moment.strftime('%Y-%m-%dT%H:%M:%SZ')}{suffix}{marks}"))
        for note in producer["dst"]:
            if note["at"] is None:
                wall = datetime.fromisoformat(note["wall"])
                near = wall.replace(tzinfo=ZoneInfo(note["timezone"]))
                text = f"    not run:  {wall.isoformat()} {note['timezone']}  [DST {note['note']}]"
                lines.append((near, text))
        for _, text in sorted(lines, key=lambda line: line[0]):
            click.echo(text)

"""`drumline why WORKFLOW PRODUCER [TIME]`: the slot ledger's answer for one slot."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any

import click

from models.log_text import loggable
from models.slot_ledger_store import SlotOutcomeRecord, outcome_at
from workers.cli.context import (
    CliContext,
    json_option,
    pass_context,
    print_json,
    require_producer,
    require_workflow,
    when,
)
from workers.cli.validate_command import InstantType


@click.command()
@click.argument("workflow")
@click.argument("producer")
@click.argument("time", required=False, type=InstantType())
@json_option
@pass_context
def why(
    ctx: CliContext, workflow: str, producer: str, time: datetime | None, as_json: bool
) -> None:
    """Say what happened to PRODUCER's slot at or before TIME (default: the latest): its
    outcome, reason, attempts, timing and the policy that decided it."""
    record = require_workflow(ctx, workflow)
    schedule = require_producer(ctx, record, producer)
    found = outcome_at(ctx.engine, record.id, producer, time)
    if found is None:
        raise click.ClickException(
            f"{workflow}.{producer} has no recorded slot"
            + (f" at or before {when(time)}" if time else "")
            + f"; its next run is {when(schedule.next_run_at, never='never')}"
        )
    pending = time is not None and not found.covers(time)
    if as_json:
        print_json(
            {"workflow": record.name, "producer": producer, "asked": time}
            | {"outcome": asdict(found), "covers_asked_time": not pending}
        )
        return
    for label, value in _lines(found):
        click.echo(f"{label + ':':<10} {value}")
    if pending:
        click.echo(
            f"note:      no slot of {loggable(producer)} fell due between this one and"
            f" {when(time)}, or its outcome is not recorded yet (next run:"
            f" {when(schedule.next_run_at, never='never')})"
        )


def _lines(found: SlotOutcomeRecord) -> list[tuple[str, Any]]:
    slots = when(found.slot)
    if found.range_end is not None:
        count = "more than 1,000" if found.slot_count is None else f"{found.slot_count:,}"
        slots = f"{slots} up to (not including) {when(found.range_end)}: {count} slots"
    return [
        ("slot", slots),
        ("outcome", found.outcome),
        ("reason", loggable(found.reason, 500)),
        ("policy", loggable(found.policy)),
        ("attempts", found.attempts),
        ("started", when(found.started_at)),
        ("finished", when(found.finished_at)),
        ("recorded", when(found.recorded_at)),
    ]

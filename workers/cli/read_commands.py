"""`drumline ls | status | runs`: read-only views straight from the database."""

from __future__ import annotations

import sys
from dataclasses import asdict
from typing import Any

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from models.log_text import loggable
from models.read_models import ProducerStatus, producer_status, workflow_overview
from models.records import RunRecord, ScheduleRecord
from models.run_store import RunStore
from models.schedules import schedule_from_row
from models.slot_ledger_store import SlotOutcomeRecord, recent_outcomes
from models.slot_policy import SlotPolicy
from workers.cli.context import (
    CliContext,
    json_option,
    last_line,
    milliseconds,
    pass_context,
    print_json,
    require_producer,
    require_workflow,
    when,
)

FAILURE_CHARS = 80
PAUSED = "paused"


@click.command()
@json_option
@pass_context
def ls(ctx: CliContext, as_json: bool) -> None:
    """List workflows: status, version, producers and the earliest next run."""
    # A paused producer's stored next run passes without a run: `next_run_at` leaves it out.
    rows = [asdict(workflow) for workflow in workflow_overview(ctx.engine)]
    if as_json:
        print_json({"workflows": rows})
        return
    table = Table("workflow", "status", "version", "producers", "next run (UTC)")
    for row in rows:
        all_paused = row["producers"] and row["paused"] == row["producers"]
        table.add_row(
            shown(row["name"]),
            row["status"],
            str(row["version"]),
            str(row["producers"]) + (f" ({row['paused']} paused)" if row["paused"] else ""),
            PAUSED if all_paused else when(row["next_run_at"]),
        )
    console().print(table)


@click.command()
@click.argument("name")
@json_option
@pass_context
def status(ctx: CliContext, name: str, as_json: bool) -> None:
    """Show each producer of workflow NAME: schedule, next and last run, failures."""
    workflow = require_workflow(ctx, name)
    statuses = producer_status(ctx.engine, workflow_id=workflow.id)
    rows = [p.schedule for p in statuses]
    producers = [_producer_view(p) for p in statuses]
    if as_json:
        print_json(
            {
                "workflow": workflow.name,
                "status": workflow.status,
                "version": workflow.version,
                "producers": producers,
            }
        )
        return
    table = Table(
        "producer",
        "run",
        "schedule",
        "next run (UTC)",
        "last run (UTC)",
        "last status",
        "failures",
        "last failure",
        title=shown(f"{workflow.name} (v{workflow.version}, {workflow.status})"),
    )
    for row, view in zip(rows, producers, strict=True):
        table.add_row(
            shown(view["name"]),
            shown(view["run"]),
            f"{view['schedule']}\n{view['policy']}",
            _paused_cell(row) if view["paused"] else when(view["next_run_at"], never="never"),
            when(view["last_run_at"]),
            view["last_status"] or "-",
            str(view["consecutive_failures"]),
            Text(view["last_failure"] or "-"),
        )
    console().print(table)


@click.command()
@click.argument("name")
@click.option("--producer", help="Only this producer's runs.")
@click.option(
    "--limit",
    type=click.IntRange(1, 10_000),
    default=20,
    show_default=True,
    help="How many runs, newest first.",
)
@click.option(
    "--outcomes",
    is_flag=True,
    help="Show the slot ledger instead: every slot's one outcome (a range of slots is one line).",
)
@json_option
@pass_context
def runs(
    ctx: CliContext, name: str, producer: str | None, limit: int, outcomes: bool, as_json: bool
) -> None:
    """Show the run history of workflow NAME, newest first."""
    workflow = require_workflow(ctx, name)
    if producer is not None:
        require_producer(ctx, workflow, producer, param_hint="--producer")
    if outcomes:
        ledger = recent_outcomes(ctx.engine, workflow.id, producer, limit=limit)
        if as_json:
            print_json({"workflow": workflow.name, "outcomes": [asdict(r) for r in ledger]})
        else:
            _print_outcomes(ledger)
        return
    records = RunStore(ctx.engine).list(workflow.id, producer_name=producer, limit=limit)
    if as_json:
        print_json({"workflow": workflow.name, "runs": [_run_view(run) for run in records]})
        return
    table = Table(
        "producer",
        "scheduled for",
        "started",
        "finished",
        "status",
        "ms",
        "attempt",
        "task id",
        "error",
    )
    for run in records:
        table.add_row(
            run.producer_name,
            when(run.scheduled_for),
            when(run.started_at),
            when(run.finished_at),
            run.status,
            milliseconds(run.duration_ms),
            str(run.attempt),
            shown(run.task_id or "-"),
            shown(last_line(run.error)),
        )
    console().print(table)


def _print_outcomes(records: list[SlotOutcomeRecord]) -> None:
    table = Table("producer", "slot", "up to", "slots", "outcome", "attempts", "policy", "reason")
    for record in records:
        table.add_row(
            record.producer_name,
            when(record.slot),
            when(record.range_end),
            "-" if record.slot_count is None else str(record.slot_count),
            record.outcome,
            str(record.attempts),
            shown(record.policy),
            shown(last_line(record.reason)),
        )
    console().print(table)


def _paused_cell(row: ScheduleRecord) -> Text:
    by = paused_by(row)
    return Text(PAUSED if by is None else f"{PAUSED} by {by}")


def shown(text: str) -> Text:
    """Text from the database as a table cell: escaped, and never read as rich markup."""
    return Text(loggable(text))


def console() -> Console:
    """Full-width tables when piped: rich would squeeze them to 80 columns."""
    return Console() if sys.stdout.isatty() else Console(width=220)


def describe_schedule(row: ScheduleRecord) -> str:
    schedule = schedule_from_row(row.schedule_type, row.schedule_value, row.timezone)
    return schedule.describe(exhausted=row.next_run_at is None)


def describe_policy(row: ScheduleRecord) -> str:
    """The producer's slot policies in one line (defaults included)."""
    return SlotPolicy.from_json(row.policy).describe()


def paused_by(row: ScheduleRecord) -> str | None:
    """Who paused the producer, when and why, in one line; None if nobody said."""
    if not row.paused or row.paused_by is None:
        return None
    note = f": {row.pause_note}" if row.pause_note else ""
    return loggable(f"{row.paused_by} at {when(row.paused_at)}{note}", 300)


def last_failure(error: str | None) -> str | None:
    """A run's error as one short, escaped line (a traceback's last line)."""
    return loggable(last_line(error), FAILURE_CHARS) if error else None


def _producer_view(producer: ProducerStatus) -> dict[str, Any]:
    row = producer.schedule
    return {
        "name": row.producer_name,
        "run": row.run,
        "schedule": describe_schedule(row),
        "policy": describe_policy(row),
        "paused": row.paused,
        "paused_by": row.paused_by if row.paused else None,
        "paused_at": row.paused_at if row.paused else None,
        "pause_note": row.pause_note if row.paused else None,
        # A paused producer's stored next run passes without a run: it has none.
        "next_run_at": None if row.paused else row.next_run_at,
        "last_run_at": row.last_run_at,
        "last_status": row.last_status,
        "consecutive_failures": row.consecutive_failures,
        "last_failure": last_failure(producer.last_error),
        "state": row.state,
    }


def _run_view(run: RunRecord) -> dict[str, Any]:
    return {
        "producer": run.producer_name,
        "scheduled_for": run.scheduled_for,
        "trigger": run.trigger,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "status": run.status,
        "duration_ms": run.duration_ms,
        "attempt": run.attempt,
        "task_id": run.task_id,
        "error": run.error,
        "result": run.result,
    }

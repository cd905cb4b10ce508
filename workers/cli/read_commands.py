"""`drumline ls | status | runs`: read-only views straight from the database."""

from __future__ import annotations

import sys

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from models.log_text import last_line, loggable
from models.read_models import producer_status, workflow_overview
from models.records import ScheduleRecord
from models.run_store import RunStore
from models.slot_ledger_store import SlotOutcomeRecord, recent_outcomes
from workers.cli.context import (
    CliContext,
    json_option,
    milliseconds,
    pass_context,
    print_json,
    require_producer,
    require_workflow,
    when,
)
from workers.read_views import (
    backfill_view,
    outcomes_view,
    paused_by,
    producer_view,
    run_view,
    workflow_view,
)

PAUSED = "paused"


@click.command()
@json_option
@pass_context
def ls(ctx: CliContext, as_json: bool) -> None:
    """List workflows: status, version, producers and the earliest next run."""
    # A paused producer's stored next run passes without a run: `next_run_at` leaves it out.
    rows = [workflow_view(workflow) for workflow in workflow_overview(ctx.engine)]
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
    producers = [producer_view(p) for p in statuses]
    backfills = [backfill_view(b.backfill, b) for b in ctx.client(database=True).backfills(name)]
    if as_json:
        print_json(
            {
                "workflow": workflow.name,
                "status": workflow.status,
                "version": workflow.version,
                "producers": producers,
                "backfills": backfills,
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
    for backfill in backfills:
        click.echo(
            f"backfill {backfill['id']} of {loggable(backfill['producer'])} "
            f"({backfill['from']} to {backfill['to']}, {backfill['rate']:g}/s): "
            f"{backfill['status']}, {backfill['done']}/{backfill['total']} done, "
            f"{backfill['failed']} failed, {backfill['pending']} pending"
        )


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
            print_json(outcomes_view(workflow.name, ledger))
        else:
            _print_outcomes(ledger)
        return
    records = RunStore(ctx.engine).list(workflow.id, producer_name=producer, limit=limit)
    if as_json:
        print_json({"workflow": workflow.name, "runs": [run_view(run) for run in records]})
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

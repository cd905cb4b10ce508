"""`drumline trigger`: run one producer now (or `--at` a later time), outside its schedule,
without moving its next run; `drumline cancel` withdraws a request that has not started.

The request is recorded first, as a pending run row with a random token; the message carries
that token, and a worker runs a manual slot only if the database holds a pending request with
the same slot and token. So a message nobody recorded, or one delivered twice, runs nothing.
A request `--at` a later time is sent by beat when its time comes.
"""

from __future__ import annotations

import secrets
import sys
import time
from datetime import datetime, timedelta
from typing import Any

import click

from beat.dispatch import PRODUCERS_QUEUE, RUN_PRODUCER, run_producer_call
from models.records import RunRecord, ScheduleRecord
from models.run_store import TERMINAL_STATUSES, RunStore
from models.stored_schedules import schedule_from_row
from models.types import utc_now
from models.vocabulary import RunStatus, WorkflowStatus
from workers.cli.context import (
    CliContext,
    json_option,
    last_line,
    milliseconds,
    pass_context,
    print_json,
    require_producer,
    require_workflow,
    timeout_option,
)
from workers.cli.tasks_client import enqueue
from workers.cli.validate_command import InstantType

POLL_S = 0.2
MAX_AHEAD = timedelta(days=366)
TOKEN_BYTES = 16


@click.command()
@click.argument("name")
@click.argument("producer")
@click.option(
    "--at",
    "at",
    type=InstantType(),
    default=None,
    help="Run it once at this instant instead of now (ISO 8601 with a zone, within a year).",
)
@click.option("--wait", is_flag=True, help="Wait for the run to finish and print its outcome.")
@timeout_option(60.0, "Seconds to wait with --wait")
@json_option
@pass_context
def trigger(
    ctx: CliContext,
    name: str,
    producer: str,
    at: datetime | None,
    wait: bool,
    timeout: float,
    as_json: bool,
) -> None:
    """Run PRODUCER of workflow NAME once, now or --at a later time (manual-only producers
    too). The request is recorded; `drumline cancel NAME PRODUCER --at TIME` withdraws it.

    A paused workflow is refused: resume it first.
    """
    workflow = require_workflow(ctx, name)
    row = require_producer(ctx, workflow, producer)
    if workflow.status == WorkflowStatus.PAUSED or row.paused:
        raise click.ClickException(
            f"workflow {workflow.name!r} is paused, so nothing was triggered: "
            f"`drumline resume {workflow.name}` first"
        )
    runs = RunStore(ctx.engine)
    now = utc_now()
    slot = now if at is None else _later_slot(at, now)
    if at is not None and _is_scheduled(row, slot):
        raise click.BadParameter(
            f"{slot.isoformat()} is a scheduled slot of {producer} already: pick another time",
            param_hint="--at",
        )
    token = secrets.token_hex(TOKEN_BYTES)
    task_id, kwargs = run_producer_call(
        workflow.id, workflow.name, producer, slot, trigger_token=token
    )
    request = runs.request_trigger(
        workflow_id=workflow.id,
        producer_name=producer,
        scheduled_for=slot,
        trigger_token=token,
        task_id=task_id,
        now=now,
    )
    if request is None:
        raise click.ClickException(f"{task_id} has a run already; nothing was triggered: retry")
    if at is not None and not wait:
        _report(workflow.name, request, as_json, f"recorded {task_id}; beat sends it at {slot}")
        return
    try:
        if at is None:
            enqueue(ctx, RUN_PRODUCER, kwargs=kwargs, task_id=task_id, queue=PRODUCERS_QUEUE)
    except BaseException:
        runs.withdraw_trigger(request.id)  # never sent: leave no request behind
        raise
    if not wait:
        _report(workflow.name, request, as_json, f"triggered {task_id}")
        return
    deadline = time.monotonic() + timeout + (slot - now).total_seconds()
    while time.monotonic() < deadline:
        run = runs.get_slot(workflow.id, producer, slot)
        if run is not None and run.status in TERMINAL_STATUSES:
            outcome = f"{run.status} in {milliseconds(run.duration_ms, ' ms')}"
            _report(workflow.name, run, as_json, outcome)
            if run.error and not as_json:
                click.echo(last_line(run.error), err=True)
            sys.exit(0 if run.status == RunStatus.SUCCEEDED else 1)
        time.sleep(POLL_S)
    raise click.ClickException(f"the run did not finish within {timeout:g}s")


def _later_slot(at: datetime, now: datetime) -> datetime:
    """`--at`: a future instant within a year, to the second (as schedules' slots are)."""
    if at <= now:
        raise click.BadParameter(
            f"{at.isoformat()} has passed: give a later time", param_hint="--at"
        )
    if at - now > MAX_AHEAD:
        raise click.BadParameter("is more than 366 days ahead", param_hint="--at")
    return at.replace(microsecond=0)


def _is_scheduled(row: ScheduleRecord, slot: datetime) -> bool:
    """Whether the producer's own schedule has a slot at `slot` (one run per slot: a request
    there would take the scheduled run's place)."""
    schedule = schedule_from_row(row.schedule_type, row.schedule_value, row.timezone)
    return schedule.next_after(slot - timedelta(microseconds=1)) == slot


@click.command()
@click.argument("name")
@click.argument("producer")
@click.option("--at", "at", type=InstantType(), required=True, help="The requested run's time.")
@json_option
@pass_context
def cancel(ctx: CliContext, name: str, producer: str, at: datetime, as_json: bool) -> None:
    """Withdraw the trigger request of PRODUCER of workflow NAME at --at, if it has not
    started: it is recorded skipped (cancelled), and its message, if sent, runs nothing."""
    workflow = require_workflow(ctx, name)
    require_producer(ctx, workflow, producer)
    cancelled = RunStore(ctx.engine).cancel_trigger(
        workflow.id, producer, at.replace(microsecond=0), utc_now()
    )
    if cancelled is None:
        raise click.ClickException(
            f"no pending trigger request of {workflow.name}.{producer} at {at.isoformat()}: "
            "nothing was cancelled (`drumline runs` lists the requests)"
        )
    _report(workflow.name, cancelled, as_json, f"cancelled {cancelled.task_id}")


def _report(workflow: str, run: RunRecord, as_json: bool, line: str) -> None:
    if as_json:
        print_json(_run_view(workflow, run))
    else:
        click.echo(line)


def _run_view(workflow: str, run: RunRecord) -> dict[str, Any]:
    return {
        "task_id": run.task_id,
        "workflow": workflow,
        "producer": run.producer_name,
        "scheduled_for": run.scheduled_for,
        "status": run.status,
        "duration_ms": run.duration_ms,
        "error": run.error,
        "result": run.result,
    }

"""`drumline trigger`: run one producer now, outside its schedule, without moving its next run.

The request is recorded first, as a pending run row with a random token; the message carries
that token, and a worker runs a manual slot only if the database holds a pending request with
the same slot and token. So a message nobody recorded, or one delivered twice, runs nothing.
"""

from __future__ import annotations

import secrets
import sys
import time
from typing import Any

import click

from beat.dispatch import PRODUCERS_QUEUE, RUN_PRODUCER, run_producer_call
from models.records import RunRecord
from models.run_store import TERMINAL_STATUSES, RunStore
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

POLL_S = 0.2
TOKEN_BYTES = 16


@click.command()
@click.argument("name")
@click.argument("producer")
@click.option("--wait", is_flag=True, help="Wait for the run to finish and print its outcome.")
@timeout_option(60.0, "Seconds to wait with --wait")
@json_option
@pass_context
def trigger(
    ctx: CliContext, name: str, producer: str, wait: bool, timeout: float, as_json: bool
) -> None:
    """Run PRODUCER of workflow NAME once, now (manual-only producers too).

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
    slot = utc_now()
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
        now=slot,
    )
    if request is None:
        raise click.ClickException(f"{task_id} has a run already; nothing was triggered: retry")
    try:
        enqueue(ctx, RUN_PRODUCER, kwargs=kwargs, task_id=task_id, queue=PRODUCERS_QUEUE)
    except BaseException:
        runs.withdraw_trigger(request.id)  # never sent: leave no request behind
        raise
    if not wait:
        _report(workflow.name, request, as_json, f"triggered {task_id}")
        return
    deadline = time.monotonic() + timeout
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

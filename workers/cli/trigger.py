"""`drumline trigger`: run one producer now, outside its schedule, without moving its next run
(recorded first, then sent: `workers/tasks/manual_runs.py`)."""

from __future__ import annotations

import sys
import time
from typing import Any

import click

from beat.dispatch import PRODUCERS_QUEUE, RUN_PRODUCER
from models.log_text import last_line
from models.records import RunRecord
from models.run_store import TERMINAL_STATUSES, RunStore
from models.vocabulary import RunStatus, WorkflowStatus
from workers.cli.context import (
    CliContext,
    json_option,
    milliseconds,
    pass_context,
    print_json,
    require_producer,
    require_workflow,
    timeout_option,
)
from workers.cli.tasks_client import enqueue
from workers.read_views import triggered_view
from workers.tasks.manual_runs import request_manual_run

POLL_S = 0.2


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

    def send(task_id: str, kwargs: dict[str, Any]) -> None:
        enqueue(ctx, RUN_PRODUCER, kwargs=kwargs, task_id=task_id, queue=PRODUCERS_QUEUE)

    request = request_manual_run(ctx.engine, workflow, producer, send)
    if request is None:
        raise click.ClickException(
            f"{workflow.name}.{producer} has a run in this slot already; nothing was "
            "triggered: retry"
        )
    slot = request.scheduled_for
    if not wait:
        _report(workflow.name, request, as_json, f"triggered {request.task_id}")
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
        print_json(triggered_view(workflow, run))
    else:
        click.echo(line)

"""`drumline trigger`: run one producer now, outside its schedule, without moving its next run."""

from __future__ import annotations

import sys
import time

import click

from beat.dispatch import PRODUCERS_QUEUE, RUN_PRODUCER, run_producer_call
from models.run_store import TERMINAL_STATUSES, RunStore
from models.types import utc_now
from workers.cli.context import (
    CliContext,
    last_line,
    milliseconds,
    pass_context,
    require_producer,
    require_workflow,
    timeout_option,
)
from workers.cli.tasks_client import enqueue

POLL_S = 0.2


@click.command()
@click.argument("name")
@click.argument("producer")
@click.option("--wait", is_flag=True, help="Wait for the run to finish and print its outcome.")
@timeout_option(60.0, "Seconds to wait with --wait")
@pass_context
def trigger(ctx: CliContext, name: str, producer: str, wait: bool, timeout: float) -> None:
    """Run PRODUCER of workflow NAME once, now (manual-only producers too)."""
    workflow = require_workflow(ctx, name)
    require_producer(ctx, workflow, producer)
    slot = utc_now()
    task_id, kwargs = run_producer_call(workflow.id, name, producer, slot, None)
    enqueue(ctx, RUN_PRODUCER, kwargs=kwargs, task_id=task_id, queue=PRODUCERS_QUEUE)
    click.echo(f"triggered {task_id}")
    if not wait:
        return
    runs = RunStore(ctx.engine)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = runs.get_slot(workflow.id, producer, slot)
        if run is not None and run.status in TERMINAL_STATUSES:
            click.echo(f"{run.status} in {milliseconds(run.duration_ms, ' ms')}")
            if run.error:
                click.echo(last_line(run.error), err=True)
            sys.exit(0 if run.status == "succeeded" else 1)
        time.sleep(POLL_S)
    raise click.ClickException(f"the run did not finish within {timeout:g}s")

"""`drumline trigger`: run one producer now, outside its schedule, without moving its next run."""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime

import click

from beat.dispatch import PRODUCERS_QUEUE
from models.run_store import TERMINAL_STATUSES, RunStore
from models.schedule_store import ProducerScheduleStore
from models.workflow_store import WorkflowStore
from workers.cli.context import CliContext, pass_context
from workers.cli.tasks_client import enqueue

POLL_S = 0.2


@click.command()
@click.argument("name")
@click.argument("producer")
@click.option("--wait", is_flag=True, help="Wait for the run to finish and print its outcome.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.1),
    default=60.0,
    show_default=True,
    help="Seconds to wait with --wait.",
)
@pass_context
def trigger(ctx: CliContext, name: str, producer: str, wait: bool, timeout: float) -> None:
    """Run PRODUCER of workflow NAME once, now (manual-only producers too)."""
    workflow = WorkflowStore(ctx.engine).get(name)
    if workflow is None:
        raise click.ClickException(f"no workflow named {name!r} (see `drumline ls`)")
    if ProducerScheduleStore(ctx.engine).get(workflow.id, producer) is None:
        raise click.ClickException(f"workflow {name!r} has no producer {producer!r}")
    slot = datetime.now(UTC)
    task_id = f"{name}.{producer}@{slot.isoformat()}"
    enqueue(
        ctx,
        "drumline.run_producer",
        kwargs={
            "workflow_id": workflow.id,
            "workflow": name,
            "producer": producer,
            "scheduled_for": slot.isoformat(),
            "claim_token": None,
        },
        task_id=task_id,
        queue=PRODUCERS_QUEUE,
    )
    click.echo(f"triggered {task_id}")
    if not wait:
        return
    runs = RunStore(ctx.engine)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = runs.get_slot(workflow.id, producer, slot)
        if run is not None and run.status in TERMINAL_STATUSES:
            duration = f"{run.duration_ms:.1f} ms" if run.duration_ms is not None else "-"
            click.echo(f"{run.status} in {duration}")
            if run.error:
                click.echo(run.error.strip().splitlines()[-1], err=True)
            sys.exit(0 if run.status == "succeeded" else 1)
        time.sleep(POLL_S)
    raise click.ClickException(f"the run did not finish within {timeout:g}s")

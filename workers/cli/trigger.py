"""`drumline trigger`: run one producer now (or `--at` a later time), outside its schedule,
without moving its next run; `drumline cancel` withdraws a request that has not started.

The client (`Drumline.trigger`) records the request first, as a pending run row with a random
token; the message carries that token, and a worker runs a manual slot only if the database
holds a pending request with the same slot and token. So a message nobody recorded, or one
delivered twice, runs nothing. A request `--at` a later time is sent by beat when it comes.
"""

from __future__ import annotations

import sys
from datetime import datetime

import click

from models.errors import DrumlineError, TriggerTimeError
from models.log_text import last_line
from models.records import RunRecord
from models.vocabulary import RunStatus
from workers.cli.context import (
    CliContext,
    json_option,
    milliseconds,
    pass_context,
    print_json,
    timeout_option,
)
from workers.cli.validate_command import InstantType
from workers.read_views import triggered_view


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
    client = ctx.client(broker=True, database=True)
    try:
        run = client.trigger(name, producer, at=at, wait=timeout if wait else None)
    except TriggerTimeError as exc:
        raise click.BadParameter(str(exc), param_hint="--at") from None
    except DrumlineError as exc:
        raise click.ClickException(str(exc)) from None
    if not wait:
        sent = f"recorded {run.task_id}; beat sends it at {run.scheduled_for}" if at else None
        _report(name, run, as_json, sent or f"triggered {run.task_id}")
        return
    _report(name, run, as_json, f"{run.status} in {milliseconds(run.duration_ms, ' ms')}")
    if run.error and not as_json:
        click.echo(last_line(run.error), err=True)
    sys.exit(0 if run.status == RunStatus.SUCCEEDED else 1)


@click.command()
@click.argument("name")
@click.argument("producer")
@click.option("--at", "at", type=InstantType(), required=True, help="The requested run's time.")
@json_option
@pass_context
def cancel(ctx: CliContext, name: str, producer: str, at: datetime, as_json: bool) -> None:
    """Withdraw the trigger request of PRODUCER of workflow NAME at --at, if it has not
    started: it is recorded skipped (cancelled), and its message, if sent, runs nothing."""
    client = ctx.client(broker=False, database=True)
    try:
        cancelled = client.cancel(name, producer, at)
    except DrumlineError as exc:
        raise click.ClickException(str(exc)) from None
    _report(name, cancelled, as_json, f"cancelled {cancelled.task_id}")


def _report(workflow: str, run: RunRecord, as_json: bool, line: str) -> None:
    if as_json:
        print_json(triggered_view(workflow, run))
    else:
        click.echo(line)

"""`drumline trigger`: run one producer now, outside its schedule, without moving its next run.

The client (`Drumline.trigger`) records the request first, as a pending run row with a random
token; the message carries that token, and a worker runs a manual slot only if the database
holds a pending request with the same slot and token. So a message nobody recorded, or one
delivered twice, runs nothing.
"""

from __future__ import annotations

import sys

import click

from models.errors import DrumlineError
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
from workers.read_views import triggered_view


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
    client = ctx.client(broker=True, database=True)
    try:
        run = client.trigger(name, producer, wait=timeout if wait else None)
    except DrumlineError as exc:
        raise click.ClickException(str(exc)) from None
    if not wait:
        _report(name, run, as_json, f"triggered {run.task_id}")
        return
    _report(name, run, as_json, f"{run.status} in {milliseconds(run.duration_ms, ' ms')}")
    if run.error and not as_json:
        click.echo(last_line(run.error), err=True)
    sys.exit(0 if run.status == RunStatus.SUCCEEDED else 1)


def _report(workflow: str, run: RunRecord, as_json: bool, line: str) -> None:
    if as_json:
        print_json(triggered_view(workflow, run))
    else:
        click.echo(line)

"""`drumline pause | resume NAME [--producer P] [--note TEXT]`: the workflow, or one producer."""

from __future__ import annotations

import getpass
import sys

import click

from workers.cli.context import CliContext, json_option, pass_context
from workers.cli.lifecycle_commands import _report, wait_option, wait_timeout_option
from workers.cli.tasks_client import enqueue
from workers.services.producer_pause import MAX_NOTE_CHARS

producer_option = click.option(
    "--producer", help="Only this producer of the workflow (default: the whole workflow)."
)


def _note(value: str | None) -> str | None:
    if value is not None and len(value) > MAX_NOTE_CHARS:
        raise click.BadParameter(
            f"is {len(value)} characters long; at most {MAX_NOTE_CHARS}", param_hint="--note"
        )
    return value


@click.command()
@click.argument("name")
@producer_option
@click.option("--note", help=f"Why (shown by `drumline status`; at most {MAX_NOTE_CHARS} chars).")
@wait_option
@wait_timeout_option
@json_option
@pass_context
def pause(
    ctx: CliContext,
    name: str,
    producer: str | None,
    note: str | None,
    wait: bool,
    timeout: float,
    as_json: bool,
) -> None:
    """Pause the workflow NAME, or one of its producers; `status` shows who, when and why."""
    by = getpass.getuser()
    note = _note(note)
    if producer is None:
        result = enqueue(ctx, "drumline.pause_workflow", name, by, note)
    else:
        result = enqueue(ctx, "drumline.pause_producer", name, producer, by, note)
    if not _report([(name, result)], wait, timeout, as_json):
        sys.exit(1)


@click.command()
@click.argument("name")
@producer_option
@wait_option
@wait_timeout_option
@json_option
@pass_context
def resume(
    ctx: CliContext, name: str, producer: str | None, wait: bool, timeout: float, as_json: bool
) -> None:
    """Resume the workflow NAME, or one of its producers, from the next slot after now."""
    if producer is None:
        result = enqueue(ctx, "drumline.resume_workflow", name)
    else:
        result = enqueue(ctx, "drumline.resume_producer", name, producer)
    if not _report([(name, result)], wait, timeout, as_json):
        sys.exit(1)

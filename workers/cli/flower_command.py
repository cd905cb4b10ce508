"""`drumline flower`: Flower for drumline's Celery app, every path behind basic auth."""

from __future__ import annotations

import click

from workers.cli.context import CliContext, pass_context
from workers.services.flower_gate import CredentialsMissingError, serve


@click.command(context_settings={"ignore_unknown_options": True})
@click.argument("flower_options", nargs=-1, type=click.UNPROCESSED)
@pass_context
def flower(ctx: CliContext, flower_options: tuple[str, ...]) -> None:
    """Run Flower on 127.0.0.1 with FLOWER_BASIC_AUTH=user:password required on every path.

    FLOWER_OPTIONS are Flower's own, as `--name=value` (e.g. `--port=5555`), or FLOWER_*
    variables. Unlike `celery flower`, no path answers without credentials, /metrics included.
    """
    try:
        serve(ctx.celery, flower_options)
    except CredentialsMissingError as error:
        raise click.ClickException(str(error)) from None

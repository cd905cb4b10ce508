"""`drumline web`: the schedules as pages and JSON, and the lifecycle actions
(`workers/web/`)."""

from __future__ import annotations

import logging

import click

from workers.cli.context import CliContext, pass_context
from workers.registry import load_producer_modules, registered_names
from workers.web.app import NoCredentialsError, create_app, credentials_of
from workers.web.server import DEFAULT_PORT, LOOPBACK, serve


@click.command()
@click.option("--host", default=LOOPBACK, show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=DEFAULT_PORT, show_default=True)
@pass_context
def web(ctx: CliContext, host: str, port: int) -> None:
    """Serve the web view: workflows, producers, runs, charts and the lifecycle actions.

    Browsers log in with DRUMLINE_WEB_BASIC_AUTH=user:password; scripts send
    `Authorization: Bearer $DRUMLINE_WEB_TOKEN`. Every request needs one of them.
    """
    try:
        credentials = credentials_of(ctx.settings)
    except NoCredentialsError as error:
        raise click.ClickException(str(error)) from None
    # The actions' own log lines (who asked for what, with which note), without -v.
    logging.getLogger("drumline.web").setLevel(logging.INFO)
    try:
        load_producer_modules(ctx.settings.producer_modules)
    except ImportError as error:
        raise click.ClickException(str(error)) from None
    app = create_app(ctx.engine, ctx.celery, ctx.settings, registered_names(), credentials)
    serve(app, host, port)

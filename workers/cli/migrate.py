"""`drumline migrate`: apply the schema migrations to DRUMLINE_DATABASE_URL."""

from __future__ import annotations

import click

from models import migrate as migrations
from models.db import redact_url
from workers.cli.context import CliContext, pass_context


@click.command()
@pass_context
def migrate(ctx: CliContext) -> None:
    """Apply the database migrations (idempotent)."""
    before = migrations.current_revision(ctx.engine)
    migrations.upgrade(ctx.engine)
    after = migrations.current_revision(ctx.engine)
    where = redact_url(ctx.settings.database_url)
    if before == after:
        click.echo(f"{where}: already at revision {after}")
    else:
        click.echo(f"{where}: migrated {before or 'empty'} -> {after}")

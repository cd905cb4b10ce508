"""`drumline migrate`: apply the schema migrations to DRUMLINE_DATABASE_URL."""

from __future__ import annotations

import click

from models import migrate as migrations
from models.db import make_engine, redact_url
from models.sqlite_space import enable_incremental_vacuum
from workers.cli.context import CliContext, pass_context


@click.command()
@pass_context
def migrate(ctx: CliContext) -> None:
    """Apply the database migrations (idempotent); switch an old SQLite file to incremental
    auto-vacuum, so that pruned run history gives its space back."""
    apply_migrations(ctx.settings.database_url)


def apply_migrations(database_url: str) -> None:
    """Migrate the database and say what changed (`drumline migrate`, and `drumline up`)."""
    engine = make_engine(database_url)
    before = migrations.current_revision(engine)
    migrations.upgrade(engine)
    after = migrations.current_revision(engine)
    where = redact_url(database_url)
    if before == after:
        click.echo(f"{where}: already at revision {after}")
    else:
        click.echo(f"{where}: migrated {before or 'empty'} -> {after}")
    if enable_incremental_vacuum(engine):
        click.echo(f"{where}: rewrote the file once (VACUUM) to turn on incremental auto-vacuum")

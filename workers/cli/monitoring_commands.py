"""`drumline beats`, `drumline health` and `drumline exporter`: is the system alive, and its
metrics for Prometheus."""

from __future__ import annotations

import sys
from typing import Any

import click
from rich.table import Table

from models.db import make_engine
from models.heartbeat_store import HeartbeatStore
from models.log_text import loggable
from models.types import utc_now
from workers.cli.context import (
    CliContext,
    SecondsType,
    json_option,
    pass_context,
    print_json,
    when,
)
from workers.cli.read_commands import console
from workers.services.exporter import (
    DEFAULT_PORT,
    LOOPBACK,
    Credentials,
    ExporterConfigError,
    registry_for,
    serve,
)
from workers.services.health import (
    Check,
    Ping,
    Role,
    check_beats,
    check_broker,
    check_database,
    check_workers,
    this_host,
)


@click.command()
@json_option
@pass_context
def beats(ctx: CliContext, as_json: bool) -> None:
    """List the beats that recorded a heartbeat, marking those silent too long as stale."""
    now = utc_now()
    bound = ctx.settings.beat_stale_after
    rows = HeartbeatStore(ctx.engine).list()
    if as_json:
        print_json(
            {
                "stale_after_seconds": bound.total_seconds(),
                "beats": [
                    {
                        "host": b.host,
                        "pid": b.pid,
                        "version": b.version,
                        "started_at": b.started_at,
                        "last_tick_at": b.last_tick_at,
                        "seconds_since_tick": round((now - b.last_tick_at).total_seconds(), 3),
                        "slots_sent": b.slots_sent,
                        "stale": b.stale(now, bound),
                    }
                    for b in rows
                ],
            }
        )
        return
    table = Table("host", "pid", "version", "started", "last tick", "ago", "slots sent", "state")
    for b in rows:
        table.add_row(
            loggable(b.host, 60),
            str(b.pid),
            loggable(b.version, 20),
            when(b.started_at),
            when(b.last_tick_at),
            f"{(now - b.last_tick_at).total_seconds():.1f}s",
            str(b.slots_sent),
            "stale" if b.stale(now, bound) else "alive",
        )
    console().print(table)


@click.command()
@click.option(
    "--role",
    type=click.Choice([role.value for role in Role]),
    default=None,
    help="Check one role on this host (a container's healthcheck): beat or worker.",
)
@click.option(
    "--timeout",
    type=SecondsType(0.1, 60),
    default=2.0,
    show_default=True,
    help="How long to wait for the broker and for workers to answer a ping (0.1 to 60).",
)
@json_option
@pass_context
def health(ctx: CliContext, role: str | None, timeout: float, as_json: bool) -> None:
    """Exit 0 if the system is healthy, 1 if not, saying which check failed.

    Without --role: the database and broker are reachable, a beat ticked within
    DRUMLINE_BEAT_STALE_SECONDS and a worker answers a ping. With --role beat: the database
    is reachable and a beat on this host ticked; with --role worker: the broker is reachable
    and a worker on this host answers.
    """
    settings = ctx.settings
    host = this_host() if role else None
    checks: list[Check] = []
    if role != Role.WORKER:
        checks += _database_checks(ctx, host)
    if role != Role.BEAT:
        broker = check_broker(settings.broker_url, timeout)
        checks.append(broker)
        if broker.ok:
            checks.append(check_workers(_pinger(ctx), timeout, host))
        else:
            checks.append(Check("worker", False, "not pinged: the broker is unreachable"))
    healthy = all(check.ok for check in checks)
    if as_json:
        print_json(
            {
                "healthy": healthy,
                "role": role or "all",
                "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in checks],
            }
        )
    else:
        for check in checks:
            click.echo(f"{'ok  ' if check.ok else 'FAIL'} {check.name}: {check.detail}")
        click.echo("healthy" if healthy else "unhealthy")
    if not healthy:
        sys.exit(1)


@click.command()
@click.option("--port", type=click.IntRange(1, 65535), default=DEFAULT_PORT, show_default=True)
@click.option(
    "--address",
    default=LOOPBACK,
    show_default=True,
    help="Any other address requires DRUMLINE_EXPORTER_BASIC_AUTH or DRUMLINE_EXPORTER_TOKEN.",
)
@pass_context
def exporter(ctx: CliContext, port: int, address: str) -> None:
    """Serve this host's drumline metrics (beats, workers, every producer) for Prometheus."""
    settings = ctx.settings
    credentials = Credentials(settings.exporter_basic_auth, settings.exporter_token)
    registry = registry_for(
        settings.metrics_dir,
        make_engine(settings.database_url),
        stale_after=settings.beat_stale_after,
        clock=utc_now,
    )
    click.echo(f"drumline exporter: http://{address}:{port}/metrics", err=True)
    try:
        serve(registry, address, port, credentials)
    except ExporterConfigError as error:
        raise click.ClickException(str(error)) from None
    except OSError as error:
        raise click.ClickException(f"cannot listen on {address}:{port}: {error}") from None
    except KeyboardInterrupt:
        pass


def _database_checks(ctx: CliContext, host: str | None) -> list[Check]:
    """The database (missing, unreachable or not migrated fails, as for every command) and a
    beat's heartbeat in it."""
    try:
        engine = ctx.engine
    except click.ClickException as error:
        return [
            Check("database", False, error.message),
            Check("beat", False, "not checked: the database is unavailable"),
        ]
    stale_after = ctx.settings.beat_stale_after
    try:
        return [
            check_database(engine),
            check_beats(engine, now=utc_now(), stale_after=stale_after, host=host),
        ]
    finally:
        engine.dispose()


def _pinger(ctx: CliContext) -> Ping:
    """Celery's ping, which takes the timeout by keyword (its first argument is the targets)."""

    def ping(timeout: float) -> list[dict[str, Any]]:
        replies: list[dict[str, Any]] = ctx.celery.control.ping(timeout=timeout)
        return replies

    return ping

"""`drumline dead-letters`: the task messages the workers refused, newest first."""

from __future__ import annotations

import click
import redis
from rich.table import Table

from models.db import redact_url
from models.log_text import loggable
from workers.cli.context import CliContext, json_option, pass_context, print_json
from workers.cli.read_commands import console
from workers.services.redis_client import redis_client
from workers.tasks.dead_letters import MAX_DEAD_LETTERS, DeadLetters

REDIS_TIMEOUT_S = 5


@click.command(name="dead-letters")
@click.option(
    "--limit",
    type=click.IntRange(1, MAX_DEAD_LETTERS),
    default=20,
    show_default=True,
    help=f"How many, newest first (the workers keep the last {MAX_DEAD_LETTERS}).",
)
@json_option
@pass_context
def dead_letters(ctx: CliContext, limit: int, as_json: bool) -> None:
    """Show task messages the workers refused (and acknowledged) at their boundary."""
    url = ctx.settings.lock_redis_url
    client = redis_client(
        url,
        ctx.settings.sentinel_master,
        socket_connect_timeout=REDIS_TIMEOUT_S,
        socket_timeout=REDIS_TIMEOUT_S,
    )
    try:
        letters = DeadLetters(client).latest(limit)
    except redis.RedisError as exc:
        raise click.ClickException(
            f"cannot read the dead letters from Redis at {redact_url(url)} (DRUMLINE_REDIS_URL,"
            f" else the broker): {exc}"
        ) from None
    finally:
        client.close()
    if as_json:
        print_json({"dead_letters": letters})
        return
    table = Table("received (UTC)", "task", "task id", "queue", "reason")
    for letter in letters:
        table.add_row(
            *(
                loggable(letter.get(key) or "-", limit)
                for key, limit in (
                    ("received_at", 32),
                    ("task", 40),
                    ("task_id", 60),
                    ("queue", 20),
                    ("reason", 200),
                )
            )
        )
    console().print(table)

"""Enqueue a task from the CLI (`workers/tasks/sending.py`), an unreachable broker being a
clear error that names it."""

from __future__ import annotations

from typing import Any

import click

from models.db import redact_url
from workers.cli.context import CliContext, logger
from workers.tasks.sending import BrokerUnreachableError, send, wait_for

__all__ = ["enqueue", "wait_for"]


def enqueue(ctx: CliContext, task: str, *args: Any, **options: Any) -> Any:
    """Send a task by name; a broker that cannot be reached exits 1 naming it."""
    try:
        result = send(ctx.celery, task, *args, **options)
    except BrokerUnreachableError as exc:
        where = redact_url(ctx.settings.broker_url)
        raise click.ClickException(
            f"cannot reach the broker at {where} (DRUMLINE_BROKER_URL, or the Redis of a"
            f" `drumline up` running on DRUMLINE_DATA_DIR): {exc}"
        ) from None
    logger.info("sent %s as task %s", task, result.id)
    return result

"""Enqueue a task from the CLI and, if asked, wait for its outcome."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import click
from celery.exceptions import TimeoutError as CeleryTimeoutError
from kombu.exceptions import OperationalError

import models.errors  # noqa: F401 - lets Celery rebuild lifecycle errors as their own class
from models.db import redact_url
from workers.cli.context import CliContext, logger

PUBLISH_RETRY = {"max_retries": 3, "interval_start": 0.2, "interval_step": 0.5, "interval_max": 1}


@dataclass(frozen=True)
class Outcome:
    ok: bool
    value: Any
    error: str | None


def enqueue(ctx: CliContext, task: str, *args: Any, **options: Any) -> Any:
    """Send a task by name; a broker that cannot be reached is a clear error, not a hang.

    The broker is checked first: `send_task` subscribes to the task's result before it
    publishes, and the result backend would retry an unreachable Redis for 20 seconds.
    """
    try:
        with ctx.celery.connection_for_write() as connection:
            connection.ensure_connection(**PUBLISH_RETRY)
        result = ctx.celery.send_task(
            task, args=args, retry=True, retry_policy=PUBLISH_RETRY, **options
        )
        logger.info("sent %s as task %s", task, result.id)
        return result
    except OperationalError as exc:
        where = redact_url(ctx.settings.broker_url)
        raise click.ClickException(
            f"cannot reach the broker at {where} (DRUMLINE_BROKER_URL, or the Redis of a"
            f" `drumline up` running on DRUMLINE_DATA_DIR): {exc}"
        ) from None


def wait_for(result: Any, timeout: float) -> Outcome:
    """The task's return value, or its error as one line."""
    try:
        value = result.get(timeout=timeout, propagate=False)
    except CeleryTimeoutError:
        return Outcome(
            False,
            None,
            f"no answer within {timeout:g}s: is a worker consuming the 'lifecycle' queue?",
        )
    if result.successful():
        return Outcome(True, value, None)
    return Outcome(False, None, _error_line(value))


def _error_line(error: Any) -> str:
    if isinstance(error, BaseException):
        return str(error) or type(error).__name__
    return str(error)

"""Sending a task by name and reading its answer, as the CLI and the web view do: a broker
that cannot be reached is an error at once, not a hang, and an answer is a value or one line
of error."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from celery import Celery
from celery.exceptions import TimeoutError as CeleryTimeoutError
from kombu.exceptions import OperationalError

import models.errors  # noqa: F401 - lets Celery rebuild lifecycle errors as their own class

PUBLISH_RETRY = {"max_retries": 3, "interval_start": 0.2, "interval_step": 0.5, "interval_max": 1}


class BrokerUnreachableError(Exception):
    """The broker could not take the message: nothing was sent."""


@dataclass(frozen=True)
class Outcome:
    ok: bool
    value: Any
    error: str | None


def send(celery: Celery, task: str, *args: Any, **options: Any) -> Any:
    """Send `task` by name; its AsyncResult.

    The broker is checked first: `send_task` subscribes to the task's result before it
    publishes, and the result backend would retry an unreachable Redis for 20 seconds.
    """
    try:
        with celery.connection_for_write() as connection:
            connection.ensure_connection(**PUBLISH_RETRY)
        return celery.send_task(task, args=args, retry=True, retry_policy=PUBLISH_RETRY, **options)
    except OperationalError as exc:
        raise BrokerUnreachableError(str(exc)) from None


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

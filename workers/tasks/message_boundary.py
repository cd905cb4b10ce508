"""The worker's boundary: every task message is checked in the main process before it runs.

Why here: Celery's prefork pool pickles a task's headers and arguments in the worker's main
process to hand them to a child. A value nested a few hundred levels deep makes that pickling
raise RecursionError, which kills the whole worker; with acks_late the message then goes back
to Redis and kills the next worker too. A task's strategy is the earliest hook that knows the
task: it runs for each message before Celery decodes its arguments, logs it, holds it for an
ETA or builds the pool request. (Overriding a Request's `execute_using_pool` would not do:
Celery generates a Request subclass per task that replaces it.)

A refused message is logged once at WARNING, dead-lettered (`workers.tasks.dead_letters`),
acknowledged so it is never redelivered, shown as rejected in the task events (Flower), and for
a task that keeps results, failed in the result backend so a waiting client gets the reason.
Nothing reaches the pool or the database.
"""

from __future__ import annotations

import logging
from typing import Any

import redis
from celery import Task
from celery.worker.strategy import default as default_strategy
from kombu.exceptions import ContentDisallowed, DecodeError, OperationalError
from kombu.message import Message

from models.log_text import loggable
from models.plain_json import PlainJsonError, check_plain_json
from models.types import utc_now
from workers.tasks.dead_letters import DeadLetter, DeadLetters
from workers.tasks.message_contracts import (
    HEADER_BOUNDS,
    MAX_TASK_ID_CHARS,
    RefusedMessage,
    check_arguments,
    contract_of,
)
from workers.tasks.resources import resources

logger = logging.getLogger("drumline.boundary")

# Celery's body of protocol 2 is [args, kwargs, embed]; drumline tasks are never chained, so
# every entry of `embed` (callbacks, errbacks, chain, chord) must be empty.
EMBED_KEYS = frozenset({"callbacks", "errbacks", "chain", "chord"})
# The headers with the arguments' repr that Celery prints (and Flower shows), and their limit.
REPR_HEADERS = ("argsrepr", "kwargsrepr")
MAX_REPR_CHARS = 1024


class BoundedTask(Task):  # type: ignore[misc]
    """The app's task class (`task_cls`): every task's messages pass `bounded_strategy`, so a
    forged message for Celery's own built-in tasks is refused as well."""

    Strategy = "workers.tasks.message_boundary:bounded_strategy"


def bounded_strategy(task: Any, app: Any, consumer: Any, **options: Any) -> Any:
    """Celery's default strategy for `task`, behind `check_message`."""
    run = default_strategy(task, app, consumer, **options)
    refuse = _Refusal(task, app, consumer)

    def on_message(message: Message, body: Any, ack: Any, reject: Any, callbacks: Any) -> Any:
        try:
            check_message(task.name, message, body)
        except RefusedMessage as refusal:
            refuse(message, str(refusal), ack)
            return None
        return run(message, body, ack, reject, callbacks)

    return on_message


def check_message(task: str, message: Message, body: Any) -> None:
    """RefusedMessage unless `message` is a protocol 2 message for `task` whose headers, size,
    encoding and arguments are all within the task's contract. Decodes the body (kombu caches
    it for Celery) only once its size is known to be in bounds, and escapes the argument reprs
    in the headers, which Celery logs."""
    contract = contract_of(task)
    if body is not None:  # Celery hands over a decoded body only for protocol 1.
        raise RefusedMessage("not a task message of protocol 2")
    if task_id_of(message) is None:
        raise RefusedMessage(
            f"the task id must be a printable string of 1 to {MAX_TASK_ID_CHARS} characters"
        )
    _check_headers(message.headers)
    size = len(message.body or b"")
    if size > contract.max_body_bytes:
        raise RefusedMessage(f"body is {size} bytes; the limit is {contract.max_body_bytes}")
    try:
        payload = message.decode()
    except (DecodeError, ContentDisallowed) as exc:
        raise RefusedMessage(f"body cannot be decoded: {exc}") from None
    if not isinstance(payload, list) or len(payload) != 3:
        raise RefusedMessage("body must be a JSON array [args, kwargs, embed]")
    args, kwargs, embed = payload
    if not isinstance(embed, dict) or set(embed) - EMBED_KEYS or any(embed.values()):
        raise RefusedMessage("drumline tasks take no callbacks, errbacks, chain or chord")
    check_arguments(task, args, kwargs)


def task_id_of(message: Message) -> str | None:
    """The message's task id if it is a plausible one (Celery logs it as it is), else None."""
    headers = message.headers
    task_id = headers.get("id") if isinstance(headers, dict) else None
    if isinstance(task_id, str) and 0 < len(task_id) <= MAX_TASK_ID_CHARS and task_id.isprintable():
        return task_id
    return None


def _check_headers(headers: Any) -> None:
    try:
        check_plain_json(headers, HEADER_BOUNDS, path="headers")
    except PlainJsonError as exc:
        raise RefusedMessage(str(exc)) from None
    if not isinstance(headers, dict):
        raise RefusedMessage("headers must be a JSON object")
    for key in REPR_HEADERS:
        value = headers.get(key)
        if value is not None and not isinstance(value, str):
            raise RefusedMessage(f"header {key!r} must be a string")
        if value is not None and (len(value) > MAX_REPR_CHARS or not value.isprintable()):
            # Celery logs these as they are, and its saferepr keeps control characters: a
            # newline here (a multi-line description, or a forgery) would start a new log line.
            headers[key] = loggable(value, MAX_REPR_CHARS)


class _Refusal:
    """What happens to a refused message: log, dead-letter, acknowledge, report."""

    def __init__(self, task: Any, app: Any, consumer: Any) -> None:
        self.task = task
        self.redis_url: str = app.conf["drumline_redis_url"]
        self.sentinel_master: str | None = app.conf["drumline_redis_sentinel_master"]
        self.connection_errors = consumer.connection_errors
        self.eventer = consumer.event_dispatcher

    def __call__(self, message: Message, reason: str, ack: Any) -> None:
        task_id = task_id_of(message)
        logger.warning(
            "refused task %s id %s: %s",
            self.task.name,
            loggable(task_id) if task_id is not None else "(none)",
            loggable(reason),
        )
        self._dead_letter(message, task_id, reason)
        # Acknowledged, not rejected with requeue: the same bytes would be refused again.
        ack(logger, self.connection_errors)
        if task_id is not None:
            try:
                self._report(task_id, reason)
            except (redis.RedisError, OperationalError, OSError) as exc:
                logger.error("could not report refused task %s: %s", loggable(task_id), exc)

    def _report(self, task_id: str, reason: str) -> None:
        """Flower shows the task as rejected; a client waiting for its result gets the reason."""
        if self.eventer is not None and self.eventer.enabled and self.task.send_events:
            self.eventer.send(
                "task-rejected",
                uuid=task_id,
                name=self.task.name,
                requeue=False,
                exception=f"RefusedMessage({reason[:500]!r})",
            )
        if not self.task.ignore_result:
            error = RefusedMessage(f"refused by the worker: {reason[:500]}")
            self.task.backend.mark_as_failure(task_id, error, call_errbacks=False)

    def _dead_letter(self, message: Message, task_id: str | None, reason: str) -> None:
        info = message.delivery_info if isinstance(message.delivery_info, dict) else {}
        queue = info.get("routing_key")
        letter = DeadLetter.of(
            task_id=task_id,
            task=self.task.name,
            queue=queue if isinstance(queue, str) else None,
            reason=reason,
            received_at=utc_now().isoformat(),
            body=message.body,
        )
        try:
            DeadLetters(resources.redis(self.redis_url, self.sentinel_master)).push(letter)
        except (redis.RedisError, OperationalError, OSError) as exc:
            logger.error(
                "could not dead-letter refused task %s id %s: %s",
                self.task.name,
                loggable(task_id),
                loggable(exc),
            )

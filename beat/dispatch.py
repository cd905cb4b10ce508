"""The `drumline.run_producer` message beat sends for a claimed slot.

Beat sends the task by name and never imports `workers/`, which defines it: the name, queue and
keyword arguments below are the contract with `workers/tasks/run_tasks.py`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from celery.signals import after_task_publish, before_task_publish

from models.records import ClaimedSlot

RUN_PRODUCER = "drumline.run_producer"
PRODUCERS_QUEUE = "producers"
# Straight to the queue (the default exchange), as send_task routes a direct queue.
_ROUTE = {"exchange": "", "routing_key": PRODUCERS_QUEUE}


def run_producer_call(
    workflow_id: int,
    workflow: str,
    producer: str,
    scheduled_for: datetime,
    *,
    claim_token: str | None = None,
    trigger_token: str | None = None,
) -> tuple[str, dict[str, Any]]:
    """The task id and JSON-safe keyword arguments of one `drumline.run_producer` task.

    The id, `<workflow>.<producer>@<scheduled_for>`, tells in Flower and logs which slot a task
    runs. It carries exactly one token: beat sends the slot's claim token, `drumline trigger`
    the token of the trigger request it recorded. Workers run nothing without one.
    """
    if (claim_token is None) == (trigger_token is None):
        raise ValueError("a run_producer message carries exactly one of claim_token, trigger_token")
    instant = scheduled_for.astimezone(UTC).isoformat()
    kwargs: dict[str, Any] = {
        "workflow_id": workflow_id,
        "workflow": workflow,
        "producer": producer,
        "scheduled_for": instant,
    }
    if claim_token is not None:
        kwargs["claim_token"] = claim_token
    else:
        kwargs["trigger_token"] = trigger_token
    return f"{workflow}.{producer}@{instant}", kwargs


class RunProducerPublisher:
    """Publishes `drumline.run_producer` messages for claimed slots, fast.

    `app.send_task` redoes routing, option merging, retry-policy merging and a queue declare for
    every message; at thousands of slots per tick that, not Redis, bounds beat. This builds the
    same protocol-2 message with `app.amqp.create_task_message` and publishes it to the
    `producers` queue on the caller's (batching) producer. What send_task promises is kept: the
    `before_task_publish`/`after_task_publish` signals fire, and the `task-sent` event is sent
    when `task_send_sent_event` is on, so workers, Flower and instrumentation see the usual.
    """

    def __init__(self, app: Any) -> None:
        self._amqp = app.amqp
        self._queue = app.amqp.queues[PRODUCERS_QUEUE]
        self._delivery_mode = self._queue.exchange.delivery_mode or 2  # persistent
        # As Celery's own sender: a disabled dispatcher that publishes on the producer given.
        self._events = (
            app.events.Dispatcher(enabled=False) if app.conf.task_send_sent_event else None
        )

    @property
    def operations_per_message(self) -> int:
        """Broker operations per slot (the task, plus its task-sent event), to size a batch."""
        return 1 if self._events is None else 2

    def declare(self, producer: Any) -> None:
        """Declare the `producers` queue once per batch rather than once per message."""
        producer.maybe_declare(self._queue)

    def publish(self, producer: Any, slot: ClaimedSlot) -> str:
        """Publish one slot's task; returns its id. The message expires with the claim (or at
        the slot's start deadline, if sooner): one not started by then is dropped, and beat
        claims the slot again, to send it or, past its deadline, record it missed."""
        task_id, kwargs = run_producer_call(
            slot.workflow_id,
            slot.workflow_name,
            slot.producer_name,
            slot.scheduled_for,
            claim_token=slot.claim_token,
        )
        headers, properties, body, sent_event = self._amqp.create_task_message(
            task_id,
            RUN_PRODUCER,
            (),
            kwargs,
            expires=slot.message_expires,
            # Runs are recorded in the database, so no result is stored or awaited.
            ignore_result=True,
            # Precomputed reprs for Flower and logs: Celery's saferepr of every message is costly.
            argsrepr="()",
            kwargsrepr=repr(kwargs),
            create_sent_event=self._events is not None,
        )
        before_task_publish.send(
            sender=RUN_PRODUCER,
            body=body,
            headers=headers,
            properties=properties,
            declare=[self._queue],
            retry_policy=None,
            **_ROUTE,
        )
        producer.publish(
            body,
            serializer="json",
            headers=headers,
            delivery_mode=self._delivery_mode,
            retry=False,
            **_ROUTE,
            **properties,
        )
        after_task_publish.send(sender=RUN_PRODUCER, body=body, headers=headers, **_ROUTE)
        if self._events is not None:
            sent_event.update(queue=PRODUCERS_QUEUE, **_ROUTE)
            self._events.publish("task-sent", sent_event, producer, retry=False)
        return task_id

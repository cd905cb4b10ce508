"""The `drumline.run_producer` message beat sends for a claimed slot.

Beat sends the task by name and never imports `workers/`, which defines it: the name, queue and
keyword arguments below are the contract with `workers/tasks/run_tasks.py`.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

from celery.signals import after_task_publish, before_task_publish
from celery.utils.time import utcoffset
from kombu.exceptions import OperationalError as BrokerError
from redis.exceptions import RedisError

from beat.json_template import JsonTemplate, json_text, placeholder
from models.records import ClaimedSlot
from models.trigger_claims import DueTrigger

RUN_PRODUCER = "drumline.run_producer"
PRODUCERS_QUEUE = "producers"
# Straight to the queue (the default exchange), as send_task routes a direct queue.
_ROUTE = {"exchange": "", "routing_key": PRODUCERS_QUEUE}
# Celery's worker sends its task events in groups, a JSON list per message under this routing
# key, and every event receiver (Flower's too) reads such a list as one event after another.
EVENTS_ROUTING_KEY = "task.multi"
EVENTS_PER_MESSAGE = 100
# Celery's protocol-2 embed of a task with no callbacks, errbacks, chain or chord.
_EMBED = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}
_EMBED_JSON = json.dumps(_EMBED)


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
    """Publishes `drumline.run_producer` messages, and their `task-sent` events, for claimed
    slots: a batch in one Redis pipeline.

    `app.send_task` redoes routing, option merging, retry-policy merging and a queue declare for
    every message, and Celery's event dispatcher costs as much again per `task-sent` event; at
    thousands of slots per tick that, not Redis, bounds beat. So the message and the event are
    JSON templates, made once from Celery's own headers (`app.amqp.as_task_v2`), event fields
    and kombu's envelope; per slot only the id, expiry, keyword arguments, clock, timestamp and
    delivery tag are filled in. The events go out in groups, up to 100 a message, as Celery's
    worker sends its own (`task.multi`). Each message is the envelope kombu's Redis transport
    would LPUSH, and each group of events what Celery's dispatcher would PUBLISH
    (tests/test_dispatch.py compares them), so workers and Flower see the usual. What send_task
    promises is kept: the `before_task_publish`/`after_task_publish` signals fire when
    connected, and headers a `before_task_publish` receiver changes are sent.
    """

    def __init__(self, app: Any) -> None:
        self._clock = app.clock
        self._queue = app.amqp.queues[PRODUCERS_QUEUE]
        self._events = bool(app.conf.task_send_sent_event)
        # Celery's headers for this task; per message only the id, expiry and kwargsrepr change.
        self._headers = app.amqp.as_task_v2(
            "", RUN_PRODUCER, (), {}, ignore_result=True, argsrepr="()", kwargsrepr=""
        ).headers
        self._headers_json = JsonTemplate(
            {
                **self._headers,
                "id": placeholder("id"),
                "root_id": placeholder("id"),
                "expires": placeholder("expires"),
                "kwargsrepr": placeholder("kwargsrepr"),
            }
        )
        self._message_json = JsonTemplate(
            _envelope(
                headers=placeholder("headers"),
                properties={
                    "correlation_id": placeholder("id"),
                    "reply_to": "",
                    "delivery_mode": self._queue.exchange.delivery_mode or 2,  # persistent
                    "delivery_info": _ROUTE,
                },
            )
        )
        dispatcher = app.events.Dispatcher(enabled=False)
        self._event_exchange = dispatcher.exchange.name
        self._event_body_json = JsonTemplate(
            {
                "hostname": dispatcher.hostname,
                "utcoffset": placeholder("utcoffset"),
                "pid": dispatcher.pid,
                "clock": placeholder("clock"),
                "uuid": placeholder("id"),
                "root_id": placeholder("id"),
                "parent_id": None,
                "name": RUN_PRODUCER,
                "args": self._headers["argsrepr"],
                "kwargs": placeholder("kwargsrepr"),
                "retries": 0,
                "eta": None,
                "expires": placeholder("expires"),
                "queue": PRODUCERS_QUEUE,
                **_ROUTE,
                "timestamp": placeholder("timestamp"),
                "type": "task-sent",
            }
        )
        self._event_json = JsonTemplate(
            _envelope(
                headers=dispatcher.headers,
                properties={
                    "delivery_mode": dispatcher.delivery_mode,
                    "delivery_info": {
                        "exchange": self._event_exchange,
                        "routing_key": EVENTS_ROUTING_KEY,
                    },
                },
            )
        )

    def declare(self, producer: Any) -> None:
        """Declare the `producers` queue once per batch rather than once per message."""
        producer.maybe_declare(self._queue)

    def publish(self, producer: Any, slot: ClaimedSlot) -> str:
        """Publish one slot's task; returns its id."""
        [task_id] = self.publish_batch(producer, [slot])
        return task_id

    def publish_batch(self, producer: Any, slots: Sequence[ClaimedSlot]) -> list[str]:
        """Publish the slots' tasks (and events) in one round trip; returns their ids.
        Each message expires with its claim (or at the slot's start deadline, if sooner): one
        not started by then is dropped, and beat claims the slot again, to send it or, past its
        deadline, record it missed."""
        return self._publish_calls(producer, [_slot_call(slot) for slot in slots])

    def publish_triggers(self, producer: Any, requests: Sequence[DueTrigger]) -> list[str]:
        """Publish the tasks of trigger requests whose slot has come (`trigger --at`), each with
        its request's token; like a slot's, each expires with its claim and is sent again."""
        return self._publish_calls(producer, [_trigger_call(request) for request in requests])

    def _publish_calls(self, producer: Any, calls: Sequence[_Call]) -> list[str]:
        """Publish the calls' messages (and events) in one round trip; returns their ids.

        Raises kombu's OperationalError if Redis fails: which messages arrived is then unknown.
        """
        self.declare(producer)
        channel = producer.channel
        queue_key = channel._q_for_pri(PRODUCERS_QUEUE, 0)
        topics = channel._get_publish_topics(self._event_exchange, EVENTS_ROUTING_KEY)
        # Delivery tags only need to be unique: one random prefix per batch, not a uuid4 each.
        batch_tag = uuid4().hex
        utc_offset = json.dumps(utcoffset())
        sent, messages, events = [], [], []
        for index, call in enumerate(calls):
            task, values = self._task(call)
            values["tag"] = f'"{batch_tag}-{index}"'
            messages.append(self._message_json.fill(values))
            if self._events:
                values["utcoffset"] = utc_offset
                events.append(self._sent_event(values))
            sent.append(task)
        grouped = [
            self._events_message(
                events[start : start + EVENTS_PER_MESSAGE], f"{batch_tag}-e{start}"
            )
            for start in range(0, len(events), EVENTS_PER_MESSAGE)
        ]
        try:
            with channel.conn_or_acquire() as client, client.pipeline(transaction=False) as pipe:
                # One LPUSH of many values queues them in order, as one LPUSH each would.
                pipe.lpush(queue_key, *messages)
                for message in grouped:
                    for topic in topics:
                        pipe.publish(topic, message)
                pipe.execute()
        except RedisError as exc:
            raise BrokerError(f"cannot publish {len(calls)} run_producer messages: {exc}") from exc
        if after_task_publish.receivers:
            for task in sent:
                after_task_publish.send(
                    sender=RUN_PRODUCER, body=task.body, headers=task.headers, **_ROUTE
                )
        return [task.id for task in sent]

    def _task(self, call: _Call) -> tuple[_Task, dict[str, str]]:
        """The call's task, and the JSON text of its message's parts."""
        task_id, kwargs = call.task_id, call.kwargs
        headers = {
            **self._headers,
            "id": task_id,
            "root_id": task_id,
            "expires": call.expires.isoformat(),  # as Celery writes a datetime
            # Precomputed for Flower and logs: Celery's saferepr of every message is costly.
            "kwargsrepr": repr(kwargs),
        }
        task = _Task(task_id, headers, ((), kwargs, dict(_EMBED)))
        values = {
            "id": json_text(task_id),
            "expires": json_text(headers["expires"]),
            "kwargsrepr": json_text(headers["kwargsrepr"]),
        }
        if before_task_publish.receivers:
            before_task_publish.send(
                sender=RUN_PRODUCER,
                body=task.body,
                headers=headers,
                properties={"correlation_id": task_id, "reply_to": ""},
                declare=[self._queue],
                retry_policy=None,
                **_ROUTE,
            )
            # A receiver may have changed them: written out in full.
            values["headers"] = json.dumps(headers)
            body = json.dumps(task.body)
        else:
            values["headers"] = self._headers_json.fill(values)
            body = f"[[], {json.dumps(kwargs)}, {_EMBED_JSON}]"
        values["body"] = _base64_json_text(body)
        return task, values

    def _sent_event(self, values: dict[str, str]) -> str:
        """Celery's `task-sent` event for the message, as JSON text."""
        values["clock"] = str(self._clock.forward())
        values["timestamp"] = repr(time.time())
        return self._event_body_json.fill(values)

    def _events_message(self, events: list[str], tag: str) -> str:
        """A group of events as one message, as Celery's worker sends its own task events."""
        body = _base64_json_text(f"[{', '.join(events)}]")
        return self._event_json.fill({"body": body, "tag": json_text(tag)})


@dataclass(frozen=True)
class _Call:
    """One run_producer message to send: its task id, keyword arguments and expiry."""

    task_id: str
    kwargs: dict[str, Any]
    expires: datetime


def _slot_call(slot: ClaimedSlot) -> _Call:
    """A slot's message. A slot sent again after its lease ran out gets a task id of its own
    (see `_resent_id`); the first send keeps the plain `<workflow>.<producer>@<slot>`."""
    task_id, kwargs = run_producer_call(
        slot.workflow_id,
        slot.workflow_name,
        slot.producer_name,
        slot.scheduled_for,
        claim_token=slot.claim_token,
    )
    if slot.lease_expired:
        task_id = _resent_id(task_id, slot.claimed_until)
    return _Call(task_id, kwargs, slot.message_expires)


def _trigger_call(request: DueTrigger) -> _Call:
    """A trigger request's message; it may be sent again each lease, so its id is always
    marked with its claim (see `_resent_id`)."""
    task_id, kwargs = run_producer_call(
        request.workflow_id,
        request.workflow_name,
        request.producer_name,
        request.scheduled_for,
        trigger_token=request.trigger_token,
    )
    return _Call(_resent_id(task_id, request.claimed_until), kwargs, request.claimed_until)


def _resent_id(task_id: str, claimed_until: datetime) -> str:
    """`task_id` ending with its claim's end (`~<unix time>`). A worker that received an earlier
    copy after it expired (one restored from a dead worker) remembers that id as revoked for
    hours (Celery's `revoked_tasks`) and would discard every later copy under the same id."""
    return f"{task_id}~{claimed_until.timestamp():.0f}"


@dataclass(frozen=True)
class _Task:
    id: str
    headers: dict[str, Any]
    body: tuple[tuple[()], dict[str, Any], dict[str, Any]]


def _envelope(*, headers: Any, properties: dict[str, Any]) -> dict[str, Any]:
    """kombu's Redis envelope: a base64 JSON body, headers, properties and a delivery tag."""
    return {
        "body": placeholder("body"),
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": headers,
        "properties": {
            **properties,
            "priority": 0,
            "body_encoding": "base64",
            "delivery_tag": placeholder("tag"),
        },
    }


def _base64_json_text(text: str) -> str:
    """JSON text as a base64 JSON string, as kombu encodes a body."""
    return f'"{base64.b64encode(text.encode()).decode()}"'

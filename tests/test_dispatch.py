"""Beat's publisher against real Redis: what it pushes and publishes is what Celery would.

`RunProducerPublisher` builds the `run_producer` message and its `task-sent` event itself, for
speed; here each is compared with the one Celery's own calls (`create_task_message`, kombu's
`Producer.publish`, the event dispatcher) put in Redis for the same slot.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery
from celery.signals import after_task_publish, before_task_publish

from beat.dispatch import (
    EVENTS_PER_MESSAGE,
    PRODUCERS_QUEUE,
    RUN_PRODUCER,
    RunProducerPublisher,
    run_producer_call,
)
from models.records import ClaimedSlot
from models.types import utc_now
from tests.processes import client_app

ROUTE = {"exchange": "", "routing_key": PRODUCERS_QUEUE}


@pytest.fixture
def app(redis_url: str, tmp_path: Path) -> Iterator[Celery]:
    env = {
        "DRUMLINE_BROKER_URL": redis_url,
        "DRUMLINE_DATABASE_URL": f"sqlite:///{tmp_path / 'unused.db'}",
        "DRUMLINE_DATA_DIR": str(tmp_path / "data"),
    }
    app = client_app(env)
    yield app
    app.close()


@pytest.fixture
def events(redis_client: redis.Redis) -> Iterator[Any]:
    """A subscription to every PUB/SUB topic of the test Redis."""
    pubsub = redis_client.pubsub()
    pubsub.psubscribe("*")
    assert pubsub.get_message(timeout=5)["type"] == "psubscribe"
    yield pubsub
    pubsub.close()


def a_slot(producer: str = "p") -> ClaimedSlot:
    now = utc_now()
    return ClaimedSlot(
        schedule_id=1,
        workflow_id=7,
        workflow_name="wf",
        producer_name=producer,
        scheduled_for=now,
        claim_token="token-1",
        claimed_until=now + timedelta(seconds=300),
    )


def celery_publish(app: Celery, slot: ClaimedSlot) -> None:
    """The slot's message and task-sent event sent with Celery's and kombu's own calls."""
    task_id, kwargs = run_producer_call(
        slot.workflow_id,
        slot.workflow_name,
        slot.producer_name,
        slot.scheduled_for,
        claim_token=slot.claim_token,
    )
    headers, properties, body, sent_event = app.amqp.create_task_message(
        task_id,
        RUN_PRODUCER,
        (),
        kwargs,
        expires=slot.claimed_until,
        ignore_result=True,
        argsrepr="()",
        kwargsrepr=repr(kwargs),
        create_sent_event=True,
    )
    with app.producer_or_acquire() as producer:
        producer.publish(
            body,
            serializer="json",
            headers=headers,
            delivery_mode=2,
            retry=False,
            **ROUTE,
            **properties,
        )
    # As Celery's worker sends its task events: grouped, flushed as one message.
    sent_event.update(queue=PRODUCERS_QUEUE, **ROUTE)
    with app.connection_for_write() as connection:
        dispatcher = app.events.Dispatcher(connection, buffer_group=["task"])
        dispatcher.send("task-sent", **sent_event)
        dispatcher.flush()
        dispatcher.close()


def popped(client: redis.Redis) -> dict[str, Any]:
    raw = client.rpop(PRODUCERS_QUEUE)
    assert isinstance(raw, bytes), "no message on the producers queue"
    return decoded(raw)


def published(pubsub: Any) -> tuple[str, dict[str, Any]]:
    message = pubsub.get_message(timeout=5)
    assert message is not None and message["type"] == "pmessage", message
    channel, data = message["channel"], message["data"]
    assert isinstance(channel, bytes) and isinstance(data, bytes)
    return channel.decode(), decoded(data)


def decoded(raw: bytes) -> dict[str, Any]:
    """A kombu envelope with its body decoded; the per-message delivery tag checked, removed."""
    envelope: dict[str, Any] = json.loads(raw)
    assert envelope["properties"]["body_encoding"] == "base64"
    envelope["body"] = json.loads(base64.b64decode(envelope["body"]))
    assert isinstance(envelope["properties"].pop("delivery_tag"), str)
    return envelope


def without_clocks(message: dict[str, Any]) -> dict[str, Any]:
    """A message of grouped events, without each event's Lamport clock and timestamp."""
    events = [dict(event) for event in message["body"]]
    for event in events:
        assert isinstance(event.pop("clock"), int)
        assert isinstance(event.pop("timestamp"), float)
    return {**message, "body": events}


def test_the_message_and_the_task_sent_event_are_those_celery_sends(
    app: Celery, redis_client: redis.Redis, events: Any
) -> None:
    assert not before_task_publish.receivers, "the templated message is the one under test"
    slot = a_slot('p-"ü"')  # escaped in JSON as json.dumps escapes it
    with app.producer_or_acquire() as producer:
        [task_id] = RunProducerPublisher(app).publish_batch(producer, [slot])
    ours = popped(redis_client)
    our_topic, our_event = published(events)
    celery_publish(app, slot)
    theirs = popped(redis_client)
    their_topic, their_event = published(events)

    assert task_id == ours["headers"]["id"] == f'wf.p-"ü"@{slot.scheduled_for.isoformat()}'
    assert ours == theirs
    assert our_topic == their_topic
    assert without_clocks(our_event) == without_clocks(their_event)
    [ours_sent], [theirs_sent] = our_event["body"], their_event["body"]
    assert ours_sent["type"] == "task-sent" and ours_sent["uuid"] == task_id
    assert ours_sent["clock"] < theirs_sent["clock"], "one Lamport clock"


def test_a_slot_sent_again_after_its_lease_ran_out_has_a_task_id_of_its_own(
    app: Celery, redis_client: redis.Redis
) -> None:
    # A worker that got the first copy after it expired keeps its id as revoked, and would
    # drop the slot's every later copy under that id: the re-sent slot must not reuse it.
    first = a_slot()
    again = replace(first, claimed_until=first.claimed_until + timedelta(seconds=300))
    resent = replace(again, claim_token="token-1-r", lease_expired=True)
    with app.producer_or_acquire() as producer:
        ids = RunProducerPublisher(app).publish_batch(producer, [first, resent])
    messages = [popped(redis_client), popped(redis_client)]
    plain = f"wf.p@{first.scheduled_for.isoformat()}"
    assert ids == [plain, f"{plain}~{again.claimed_until.timestamp():.0f}"]
    assert sorted(m["headers"]["id"] for m in messages) == sorted(ids)


def test_a_large_batch_sends_its_events_in_groups_of_at_most_100(
    app: Celery, redis_client: redis.Redis, events: Any
) -> None:
    slots = [a_slot(f"p{i}") for i in range(EVENTS_PER_MESSAGE + 1)]
    with app.producer_or_acquire() as producer:
        ids = RunProducerPublisher(app).publish_batch(producer, slots)

    groups = [published(events)[1]["body"] for _ in range(2)]
    assert [len(group) for group in groups] == [EVENTS_PER_MESSAGE, 1]
    assert [event["uuid"] for group in groups for event in group] == ids
    assert events.get_message(timeout=0.5) is None


def test_a_batch_is_sent_in_order_and_without_events_when_they_are_off(
    app: Celery, redis_client: redis.Redis, events: Any
) -> None:
    app.conf.task_send_sent_event = False
    slots = [a_slot(f"p{i}") for i in range(3)]
    with app.producer_or_acquire() as producer:
        ids = RunProducerPublisher(app).publish_batch(producer, slots)

    messages = [json.loads(raw) for raw in reversed(redis_client.lrange(PRODUCERS_QUEUE, 0, -1))]
    assert [message["headers"]["id"] for message in messages] == ids
    tags = {message["properties"]["delivery_tag"] for message in messages}
    assert len(tags) == len(slots), "delivery tags are not unique"
    assert [task_id.split("@")[0] for task_id in ids] == ["wf.p0", "wf.p1", "wf.p2"]
    assert events.get_message(timeout=0.5) is None, "a task-sent event was published"


def test_publish_signals_fire_and_a_header_added_before_publish_is_sent(
    app: Celery, redis_client: redis.Redis
) -> None:
    after: list[tuple[str, str]] = []

    def add_header(headers: dict[str, Any], **_: Any) -> None:
        headers["trace"] = "t-1"

    def record(sender: str, headers: dict[str, Any], **_: Any) -> None:
        after.append((sender, headers["id"]))

    before_task_publish.connect(add_header, weak=False)
    after_task_publish.connect(record, weak=False)
    try:
        with app.producer_or_acquire() as producer:
            task_id = RunProducerPublisher(app).publish(producer, a_slot())
    finally:
        before_task_publish.disconnect(add_header)
        after_task_publish.disconnect(record)

    assert popped(redis_client)["headers"]["trace"] == "t-1"
    assert after == [(RUN_PRODUCER, task_id)]

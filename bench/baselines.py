"""What one process can send to Redis without a scheduler: the yardsticks for dispatch."""

from __future__ import annotations

import time
import uuid

import redis
from celery import Celery

from bench.apps.common import NOOP_TASK

PIPELINE_CHUNK = 1000


def raw_send_task(app: Celery, n: int, queue: str) -> float:
    """Seconds for `n` plain `app.send_task` calls in a loop."""
    app.send_task(NOOP_TASK, queue=queue)  # connect and declare outside the timing
    began = time.perf_counter()
    for _ in range(n):
        app.send_task(NOOP_TASK, queue=queue)
    return time.perf_counter() - began


def batched_send_task(app: Celery, n: int, queue: str) -> float:
    """Seconds for `n` `send_task` calls inside kombu's `Producer.batch()` (one pipeline)."""
    with app.producer_or_acquire() as producer:
        app.send_task(NOOP_TASK, queue=queue, producer=producer)
        began = time.perf_counter()
        with producer.batch():
            for _ in range(n):
                app.send_task(NOOP_TASK, queue=queue, producer=producer)
        return time.perf_counter() - began


def pipeline_ceiling(app: Celery, client: redis.Redis, n: int, queue: str) -> float:
    """Seconds to LPUSH `n` ready-made Celery messages through a Redis pipeline."""
    result = app.send_task(NOOP_TASK, queue=queue)
    template = client.rpop(queue)
    assert isinstance(template, bytes), "the sample message did not land"
    old = str(result.id).encode()
    messages = [template.replace(old, uuid.uuid4().hex.encode()) for _ in range(n)]
    began = time.perf_counter()
    with client.pipeline(transaction=False) as pipe:
        for start in range(0, n, PIPELINE_CHUNK):
            for message in messages[start : start + PIPELINE_CHUNK]:
                pipe.lpush(queue, message)
            pipe.execute()
    return time.perf_counter() - began

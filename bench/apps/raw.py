"""Raw Celery: a no-op task that notes when it finished (`celery -A bench.apps.raw worker`).

`BENCH_RAW_SETTINGS=drumline` applies drumline's acks, prefetch and event settings;
`BENCH_RAW_OVERRIDES` (JSON) changes single settings on top, to see what each one costs.
"""

from __future__ import annotations

import json
import os
import time

import redis

from bench.apps.common import DONE_KEY, NOOP_TASK, broker_url, drumline_celery_settings, plain_app

app = plain_app("bench-raw")
if os.environ.get("BENCH_RAW_SETTINGS") == "drumline":
    app.conf.update(drumline_celery_settings(broker_url()))
app.conf.update(json.loads(os.environ.get("BENCH_RAW_OVERRIDES", "{}")))

_client: redis.Redis | None = None


@app.task(name=NOOP_TASK, ignore_result=True)
def noop() -> None:
    """Does nothing but note the time it finished (one RPUSH, ~50 µs on loopback)."""
    global _client
    if _client is None:
        _client = redis.Redis.from_url(broker_url())
    _client.rpush(DONE_KEY, time.time())

"""RedBeat's app: `celery -A bench.apps.redbeat_app beat -S redbeat.RedBeatScheduler`."""

from __future__ import annotations

from celery import Celery

from bench.apps.common import broker_url, plain_app

KEY_PREFIX = "redbeat:"


def build(url: str) -> Celery:
    app = plain_app("bench-redbeat", url)
    app.conf.update(redbeat_redis_url=url, redbeat_key_prefix=KEY_PREFIX)
    return app


app = build(broker_url())

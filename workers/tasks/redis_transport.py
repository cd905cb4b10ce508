"""kombu's Redis transport, with one change: an item on a queue that is not readable JSON is
dropped and logged instead of stopping the worker.

kombu decodes each item it pops from a queue list (the envelope of body, headers and
properties) before any Celery hook sees it. An item nested thousands of levels deep makes that
decode raise RecursionError, which Celery treats as unrecoverable: the worker's main process
exits. The item was already popped (BRPOP), so dropping it is the only way on; nothing about it
can be trusted, not even its task id, so it is logged once with the queue's name and the error.
Everything else about the transport is kombu's own; the same change is made to kombu's
Sentinel transport, for `sentinel://` brokers.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from kombu.transport import redis as kombu_redis
from kombu.transport.virtual import Empty

from models.log_text import loggable

logger = logging.getLogger("drumline.boundary")
UNREADABLE = (RecursionError, json.JSONDecodeError, UnicodeDecodeError)


class DropUnreadable:
    """Mixed into a kombu Redis channel, ahead of it."""

    def _brpop_read(self, **options: Any) -> bool:
        try:
            return bool(super()._brpop_read(**options))  # type: ignore[misc]
        except UNREADABLE as exc:
            logger.warning(
                "dropped an unreadable item from the broker (not a JSON message envelope): %s",
                loggable(f"{type(exc).__name__}: {exc}"),
            )
            raise Empty() from None


class Channel(DropUnreadable, kombu_redis.Channel):
    pass


class Transport(kombu_redis.Transport):
    Channel = Channel


class SentinelChannel(DropUnreadable, kombu_redis.SentinelChannel):
    pass


class SentinelTransport(kombu_redis.SentinelTransport):
    Channel = SentinelChannel


REDIS_TRANSPORT = f"{__name__}:Transport"
SENTINEL_TRANSPORT = f"{__name__}:SentinelTransport"

"""Where the next prune pass starts, kept in Redis between passes.

A pass that stops on its limits leaves the producer it stopped at here, so the next pass, sent
by any beat to any worker, goes on from there rather than from the first producer again (which
could leave the last producers unpruned for ever on a large table). Losing the key only costs
a pass that starts from the beginning: pruning is idempotent.
"""

from __future__ import annotations

import json
import logging
from datetime import timedelta

import redis

from models.log_text import loggable
from models.run_pruning import ProducerKey

logger = logging.getLogger("drumline.retention")

CURSOR_KEY = "drumline:prune-runs:resume-at"
# A producer's key as JSON is far below this: a longer value is not one, and is not read whole.
MAX_CURSOR_BYTES = 256
MAX_PRODUCER_NAME = 63
# A sweep left unfinished this long starts again from the first producer.
CURSOR_TTL = timedelta(days=1)


class PruneCursor:
    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    def load(self) -> ProducerKey | None:
        """The producer to start at; None (from the first) if unset or not a producer's key."""
        raw = self.client.getrange(CURSOR_KEY, 0, MAX_CURSOR_BYTES)
        if not raw:
            return None
        key = _parse(raw)
        if key is None:
            logger.warning(
                "prune_runs: ignoring %s, which is not a producer's key: %s",
                CURSOR_KEY,
                loggable(raw),
            )
        return key

    def save(self, resume_at: ProducerKey | None) -> None:
        if resume_at is None:
            self.client.delete(CURSOR_KEY)
            return
        value = json.dumps([resume_at.workflow_id, resume_at.producer_name])
        self.client.set(CURSOR_KEY, value, ex=CURSOR_TTL)


def _parse(raw: bytes | str) -> ProducerKey | None:
    if len(raw) > MAX_CURSOR_BYTES:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    match value:
        case [int(workflow_id), str(producer_name)] if (
            not isinstance(workflow_id, bool)
            and workflow_id >= 0
            and 0 < len(producer_name) <= MAX_PRODUCER_NAME
        ):
            return ProducerKey(workflow_id, producer_name)
    return None

"""Refused task messages, kept in a bounded Redis list so that `drumline dead-letters` can show
them after the worker has acknowledged (and so dropped) them.

Newest first; the list keeps the last `MAX_DEAD_LETTERS`. Each entry is a small JSON object:
the task id and name, the queue, why it was refused, when, and the start of its body.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

import redis

DEAD_LETTERS_KEY = "drumline:dead-letters"
MAX_DEAD_LETTERS = 1000
MAX_EXCERPT_CHARS = 500
MAX_FIELD_CHARS = 1000


@dataclass(frozen=True)
class DeadLetter:
    task_id: str | None
    task: str
    queue: str | None
    reason: str
    received_at: str
    body_bytes: int
    body_excerpt: str

    @classmethod
    def of(
        cls,
        *,
        task_id: str | None,
        task: str,
        queue: str | None,
        reason: str,
        received_at: str,
        body: bytes | str | None,
    ) -> DeadLetter:
        """An entry with every untrusted field cut to a bound."""
        raw = body if isinstance(body, bytes) else (body or "").encode("utf-8", "replace")
        return cls(
            task_id=None if task_id is None else _cut(task_id),
            task=_cut(task),
            queue=None if queue is None else _cut(queue),
            reason=_cut(reason),
            received_at=received_at,
            body_bytes=len(raw),
            body_excerpt=raw[:MAX_EXCERPT_CHARS].decode("utf-8", "replace"),
        )


class DeadLetters:
    """The dead-letter list on one Redis."""

    def __init__(
        self, client: redis.Redis, key: str = DEAD_LETTERS_KEY, max_count: int = MAX_DEAD_LETTERS
    ) -> None:
        self.client = client
        self.key = key
        self.max_count = max_count

    def push(self, letter: DeadLetter) -> None:
        with self.client.pipeline(transaction=True) as pipe:
            pipe.lpush(self.key, json.dumps(asdict(letter)))
            pipe.ltrim(self.key, 0, self.max_count - 1)
            pipe.execute()

    def latest(self, limit: int) -> list[dict[str, Any]]:
        """The newest `limit` entries; one that is not ours to read shows as `unreadable`."""
        return [_entry(raw) for raw in self.client.lrange(self.key, 0, limit - 1)]


def _entry(raw: bytes | str) -> dict[str, Any]:
    try:
        entry = json.loads(raw)
    except (ValueError, RecursionError):
        entry = None
    if not isinstance(entry, dict):
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
        return {"unreadable": text[:MAX_EXCERPT_CHARS]}
    return entry


def _cut(text: str) -> str:
    return text[:MAX_FIELD_CHARS]

"""Per-workflow Redis locks: one lifecycle change of a workflow at a time.

The lock only keeps concurrent changes from wasting each other's work. It can expire under a
slow change; the version check inside the database transaction is what protects the data.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import redis
from redis.exceptions import LockNotOwnedError

from models.errors import WorkflowBusyError

logger = logging.getLogger("drumline.lifecycle")

LOCK_KEY_PREFIX = "drumline:lock:workflow:"


def lock_key(workflow: str) -> str:
    return f"{LOCK_KEY_PREFIX}{workflow}"


class WorkflowLocks:
    """Hands out each workflow's lock: held at most `timeout`, waited for at most `wait`."""

    def __init__(self, client: redis.Redis, *, timeout: timedelta, wait: timedelta) -> None:
        self.client = client
        self.timeout = timeout
        self.wait = wait

    @contextmanager
    def hold(self, workflow: str) -> Iterator[None]:
        """Hold `workflow`'s lock for the block; WorkflowBusyError if it stays taken too long."""
        lock = self.client.lock(
            lock_key(workflow),
            timeout=self.timeout.total_seconds(),
            blocking_timeout=self.wait.total_seconds(),
        )
        if not lock.acquire():
            raise WorkflowBusyError(
                f"workflow {workflow!r} is busy: another change holds its lock; retry",
                {"workflow": workflow, "waited_seconds": self.wait.total_seconds()},
            )
        try:
            yield
        finally:
            _release(lock, workflow)


def _release(lock: redis.lock.Lock, workflow: str) -> None:
    """Release the lock; one that expired meanwhile is only worth a warning (see module doc)."""
    try:
        lock.release()
    except LockNotOwnedError:
        logger.warning(
            "the lock of workflow %r expired before the change finished; "
            "the version check kept the data consistent",
            workflow,
        )

"""Beat's liveness: a row per beat process, its last tick written every few seconds.

Written at the start of a tick, before the claim, so a beat cut off from the database (or
stuck) goes stale; at most every `every` seconds, so a busy beat does not pay a write per tick.
"""

from __future__ import annotations

import os
import socket
import time
from datetime import datetime, timedelta
from importlib.metadata import PackageNotFoundError, version

from models.heartbeat_store import HeartbeatStore


def drumline_version() -> str:
    try:
        return version("drumline")
    except PackageNotFoundError:
        return "unknown"


class Heartbeat:
    """One beat process's heartbeat row."""

    def __init__(self, store: HeartbeatStore, every: timedelta) -> None:
        self.store = store
        self.every = every.total_seconds()
        self.slots_sent = 0
        self._row_id: int | None = None
        self._last_write = float("-inf")

    def sent(self, slots: int) -> None:
        self.slots_sent += slots

    def ticked(self, now: datetime) -> None:
        """At the start of a tick: write the row if `every` has passed."""
        moment = time.monotonic()
        if moment - self._last_write < self.every:
            return
        if self._row_id is None:
            self._row_id = self.store.register(
                host=socket.gethostname(), pid=os.getpid(), version=drumline_version(), now=now
            )
        else:
            self.store.beat(self._row_id, now=now, slots_sent=self.slots_sent)
        self._last_write = moment

"""A producer's slot policies: overlap, catch-up, start deadline, retries and auto-pause.

Stored on its schedule row (`producer_schedules.policy`) as JSON holding only what differs from
the defaults, so `{}` is today's behaviour and a row written before the policies existed reads
as the defaults.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, fields
from datetime import timedelta
from typing import Any

from models.records import JSONDict
from models.schedules import format_interval
from models.vocabulary import CatchupPolicy, OverlapPolicy

DEFAULT_BACKOFF = timedelta(seconds=10)
DEFAULT_MAX_BACKOFF = timedelta(minutes=5)


@dataclass(frozen=True)
class RetryPolicy:
    """Up to `max` more attempts within the slot, `backoff * 2**(n-1)` apart (at most
    `max_backoff`), each delay jittered down by up to half so that retries spread out."""

    max: int = 0
    backoff: timedelta = DEFAULT_BACKOFF
    max_backoff: timedelta = DEFAULT_MAX_BACKOFF

    def delay(self, failed_attempts: int, rng: random.Random | None = None) -> timedelta:
        """The pause after the `failed_attempts`-th failed attempt."""
        full: timedelta = min(self.max_backoff, self.backoff * 2 ** (failed_attempts - 1))
        draw = rng.random() if rng is not None else random.random()
        return full * (0.5 + 0.5 * draw)


@dataclass(frozen=True)
class SlotPolicy:
    overlap: OverlapPolicy = OverlapPolicy.SKIP
    max_concurrent: int = 1
    catchup: CatchupPolicy = CatchupPolicy.LATEST
    catchup_window: timedelta | None = None
    start_deadline: timedelta | None = None
    retries: RetryPolicy = field(default_factory=RetryPolicy)
    pause_after_failures: int | None = None

    def to_json(self) -> JSONDict:
        """Only the policies that differ from the defaults; durations in seconds."""
        default = SlotPolicy()
        data: JSONDict = {}
        for item in fields(self):
            value = getattr(self, item.name)
            if value == getattr(default, item.name):
                continue
            if isinstance(value, RetryPolicy):
                value = {
                    "max": value.max,
                    "backoff": value.backoff.total_seconds(),
                    "max_backoff": value.max_backoff.total_seconds(),
                }
            elif isinstance(value, timedelta):
                value = value.total_seconds()
            data[item.name] = value
        return data

    @classmethod
    def from_json(cls, data: JSONDict) -> SlotPolicy:
        """The policy a schedule row stores (written by `to_json`, so trusted)."""
        retries = data.get("retries")
        return cls(
            overlap=OverlapPolicy(data.get("overlap", OverlapPolicy.SKIP)),
            max_concurrent=int(data.get("max_concurrent", 1)),
            catchup=CatchupPolicy(data.get("catchup", CatchupPolicy.LATEST)),
            catchup_window=_seconds(data.get("catchup_window")),
            start_deadline=_seconds(data.get("start_deadline")),
            retries=RetryPolicy()
            if retries is None
            else RetryPolicy(
                max=int(retries["max"]),
                backoff=timedelta(seconds=retries["backoff"]),
                max_backoff=timedelta(seconds=retries["max_backoff"]),
            ),
            pause_after_failures=data.get("pause_after_failures"),
        )

    def describe(self) -> str:
        """Every policy in one line, defaults included, as `validate` and `status` show it."""
        overlap = str(self.overlap)
        if self.overlap == OverlapPolicy.ALLOW:
            overlap += f" (max {self.max_concurrent})"
        catchup = str(self.catchup)
        if self.catchup_window is not None:
            catchup += f" within {format_interval(self.catchup_window)}"
        parts = [f"overlap {overlap}", f"catchup {catchup}"]
        if self.start_deadline is not None:
            parts.append(f"start deadline {format_interval(self.start_deadline)}")
        if self.retries.max:
            parts.append(
                f"retries {self.retries.max} (backoff {format_interval(self.retries.backoff)},"
                f" max {format_interval(self.retries.max_backoff)})"
            )
        if self.pause_after_failures is not None:
            parts.append(f"pause after {self.pause_after_failures} failures")
        return ", ".join(parts)


def _seconds(value: Any) -> timedelta | None:
    return None if value is None else timedelta(seconds=value)

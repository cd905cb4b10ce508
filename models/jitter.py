"""Jitter: each slot moved later by a deterministic amount, so a top-of-the-hour burst spreads.

Pure: no I/O, no clock. The offset of a slot is a hash of the producer's seed (workflow and
producer name) and the slot, so every beat and `validate --next` compute the same instant, and
the jittered instant *is* the slot (stored as the next run, sent, recorded). It is less than
both the jitter and the gap to the next slot, in whole seconds, so the jittered stream stays
strictly increasing and each slot keeps its place in the order.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from datetime import datetime, timedelta

MAX_JITTER = timedelta(days=1)
_SECOND = timedelta(seconds=1)

# The schedule before jitter: its first slot strictly after an instant, None if none is left.
BaseNext = Callable[[datetime], datetime | None]


def offset(seed: str, base: datetime, cap: timedelta) -> timedelta:
    """A whole number of seconds in [0, cap) (0 when cap is under a second)."""
    digest = hashlib.sha256(f"{seed}|{base.isoformat()}".encode()).digest()
    fraction = int.from_bytes(digest[:8], "big") / 2**64
    return timedelta(seconds=math.floor(fraction * math.floor(cap.total_seconds())))


def jittered(base_next: BaseNext, seed: str, jitter: timedelta, base: datetime) -> datetime:
    """Where slot `base` of the stream lands."""
    following = base_next(base)
    cap = jitter if following is None else min(jitter, following - base)
    return base + offset(seed, base, cap)


def jittered_next(
    base_next: BaseNext, seed: str, jitter: timedelta, after: datetime
) -> datetime | None:
    """The first jittered slot strictly after `after`.

    Every jittered slot is at or after its base and before the next base, so the answer is
    the jittered last base at or before `after` (if that moved past `after`) or else the
    jittered next base. The last base at or before `after` lies within `jitter` of it, and is
    found by bisection on whole seconds (bases are whole seconds): about 17 steps for a day.
    """
    upcoming = base_next(after)
    previous = last_base_at_or_before(base_next, after, jitter)
    if previous is not None:
        moved = jittered(base_next, seed, jitter, previous)
        if moved > after:
            return moved
    return None if upcoming is None else jittered(base_next, seed, jitter, upcoming)


def last_base_at_or_before(
    base_next: BaseNext, after: datetime, jitter: timedelta
) -> datetime | None:
    low = after - jitter
    first = base_next(low)
    if first is None or first > after:
        return None
    high = after  # invariant: base_next(low) <= after < base_next(high) (or None)
    while high - low >= _SECOND:
        middle = low + (high - low) / 2
        found = base_next(middle)
        if found is not None and found <= after:
            low = middle
        else:
            high = middle
    return base_next(low)

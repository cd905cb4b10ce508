"""Built-in producers, always registered: for trying drumline out and for its tests."""

from __future__ import annotations

import random
import time
from typing import Any

from workers.registry import ProducerContext, ProducerResult, producer


class ProducerFailedError(RuntimeError):
    """Raised on purpose by the failing demo producers."""


@producer("demo.noop")
def noop(context: ProducerContext) -> None:
    """Returns at once: measures drumline's own overhead."""


@producer("demo.counter")
def counter(context: ProducerContext) -> ProducerResult:
    """Adds one to `state["count"]`: shows state carried from run to run."""
    count = int(context.state.get("count", 0)) + 1
    return ProducerResult(result={"count": count}, state={**context.state, "count": count})


@producer("demo.sleep")
def sleep(context: ProducerContext) -> dict[str, Any]:
    """Sleeps `params.seconds` (default 1): a long run for time-limit and crash tests."""
    seconds = float(context.params.get("seconds", 1))
    time.sleep(seconds)
    return {"slept": seconds}


@producer("demo.fail")
def fail(context: ProducerContext) -> None:
    """Always raises `params.message`."""
    raise ProducerFailedError(str(context.params.get("message", "demo.fail failed as asked")))


@producer("demo.flaky")
def flaky(context: ProducerContext) -> dict[str, Any]:
    """Fails with probability `params.fail_rate` (default 0.5)."""
    fail_rate = float(context.params.get("fail_rate", 0.5))
    if random.random() < fail_rate:
        raise ProducerFailedError(f"demo.flaky failed (fail_rate={fail_rate})")
    return {"ok": True}

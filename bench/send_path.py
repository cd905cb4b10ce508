"""`python -m bench.send_path`: where a steady-state tick's time goes before a slot is sent.

At a steady load beat wakes when the next slot falls due and sends it alone (one slot a tick),
so its send lateness is the wake-up plus what the tick does first. This runs beat's tick
in-process, one slot due each time, `--gap-ms` apart (beat and PostgreSQL then wake from sleep
for each tick, as at a steady load; the sleep's overrun is the wake-up), and times each step by
wrapping the scheduler's own objects (nothing in beat changes): the heartbeat, the trigger
claim, the slot claim, the publish (one Redis pipeline) and the next-wakeup query; and "until
sent", from the tick's start to the end of the publish, which is what the send lateness pays
whatever order the tick runs its steps in. It measures; it asserts nothing.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import update

from bench.infra import drumline_app, drumline_env, infrastructure, step
from bench.seed import ScheduleSeeder
from models.db import make_engine
from models.tables import producer_schedules
from models.types import utc_now

PARTS = (
    "wake-up (sleep overrun)",
    "heartbeat",
    "trigger claim",
    "slot claim",
    "publish",
    "next wakeup",
    "until sent",
)


def _timed(into: list[float], call: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        began = time.perf_counter()
        try:
            return call(*args, **kwargs)
        finally:
            into.append((time.perf_counter() - began) * 1000)

    return wrapper


def _measure(url: str, env: dict[str, str], ticks: int, gap_s: float) -> dict[str, list[float]]:
    from beat.scheduler import ProducerScheduler

    engine = make_engine(url)
    ScheduleSeeder(engine).add(1, lambda _: utc_now() + timedelta(days=1))
    scheduler = ProducerScheduler(app=drumline_app(env), lazy=True)
    times: dict[str, list[float]] = {part: [] for part in (*PARTS, "whole tick")}
    store, triggers, heartbeat = scheduler.store, scheduler.trigger_claims, scheduler.heartbeat
    store.claim_due = _timed(times["slot claim"], store.claim_due)  # type: ignore[method-assign]
    store.next_wakeup = _timed(times["next wakeup"], store.next_wakeup)  # type: ignore[method-assign]
    triggers.claim_due = _timed(times["trigger claim"], triggers.claim_due)  # type: ignore[method-assign]
    heartbeat.ticked = _timed(times["heartbeat"], heartbeat.ticked)  # type: ignore[method-assign]
    publish = _timed(times["publish"], scheduler._publish)

    def publish_then_mark(*args: Any, **kwargs: Any) -> Any:
        try:
            return publish(*args, **kwargs)
        finally:
            times["until sent"].append((time.perf_counter() - began) * 1000)

    scheduler._publish = publish_then_mark  # type: ignore[method-assign]
    began = time.perf_counter()
    try:
        for sample in range(ticks + 1):
            with engine.begin() as conn:
                conn.execute(
                    update(producer_schedules).values(
                        next_run_at=utc_now(), claimed_until=None, claim_token=None
                    )
                )
            slept = time.perf_counter()
            time.sleep(gap_s)  # idle between slots, as beat sleeps until the next falls due
            began = time.perf_counter()
            times["wake-up (sleep overrun)"].append((began - slept - gap_s) * 1000)
            scheduler.tick()
            times["whole tick"].append((time.perf_counter() - began) * 1000)
            if sample == 0:  # warm-up: connections, compiled statements
                for values in times.values():
                    values.clear()
    finally:
        scheduler.close()
        engine.dispose()
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.send_path", description=__doc__)
    parser.add_argument("--ticks", type=int, default=200)
    parser.add_argument("--stores", default="sqlite,postgresql")
    parser.add_argument(
        "--gap-ms", type=float, default=0.0, help="sleep between ticks (e.g. 33: 30 due/s)"
    )
    args = parser.parse_args(argv)
    print("| store | step | p50, ms | p90, ms | p99, ms |\n|---|---|---|---|---|")
    with (
        tempfile.TemporaryDirectory(prefix="drumline-send-path-") as tmp,
        infrastructure(Path(tmp)) as infra,
    ):
        for store in args.stores.split(","):
            with infra.database(store) as url:
                env = drumline_env(infra, url, infra.scratch("data"))
                times = _measure(url, env, args.ticks, args.gap_ms / 1000)
            step(f"send path: {store}: {args.ticks} ticks, {args.gap_ms:g} ms apart")
            for part, values in times.items():
                q = statistics.quantiles(values, n=100) if len(values) > 1 else values * 99
                print(f"| {store} | {part} | {q[49]:.2f} | {q[89]:.2f} | {q[98]:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

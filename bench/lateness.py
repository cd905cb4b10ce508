"""4. Lateness: producers on 10 s intervals; how long after its slot each run is sent and starts."""

from __future__ import annotations

import ast
import contextlib
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from celery import Celery
from sqlalchemy import Engine, select

from bench.infra import Infra, analyze, drumline_app, drumline_env, step, wait_for
from bench.procs import BEAT_READY, beat_args, running, worker_args
from bench.report import Results
from bench.seed import ScheduleSeeder
from models.db import make_engine
from models.tables import producer_runs
from models.types import utc_now

LEAD_S = 3.0  # seconds between seeding and the first slot: beat's next tick sees them
GRACE_S = 2.0


@dataclass(frozen=True)
class LatenessPlan:
    """Beat alone on `beat_stores`; beat with a 2-process worker on `stores`."""

    seconds: float
    stores: tuple[str, ...]
    beat_stores: tuple[str, ...] = ("sqlite", "postgresql")
    producers: int = 2_000
    interval_s: float = 10.0
    drain_s: float = 15.0


class SentEvents:
    """Listens for `task-sent` events: when beat published each slot, by beat's clock."""

    def __init__(self, app: Celery) -> None:
        self.app = app
        self.sent: dict[str, tuple[datetime, float]] = {}
        self._receiver: Any = None
        self._thread = threading.Thread(target=self._run, name="sent-events", daemon=True)

    def _on_sent(self, event: dict[str, Any]) -> None:
        uuid = str(event.get("uuid"))
        if uuid in self.sent:
            return
        try:
            kwargs = ast.literal_eval(str(event.get("kwargs")))
            scheduled_for = datetime.fromisoformat(kwargs["scheduled_for"])
        except (ValueError, SyntaxError, KeyError, TypeError):
            return
        self.sent[uuid] = (scheduled_for, float(event["timestamp"]))

    def _run(self) -> None:
        with self.app.connection_for_read() as connection:
            self._receiver = self.app.events.Receiver(
                connection, handlers={"task-sent": self._on_sent}
            )
            self._receiver.capture(limit=None, timeout=None, wakeup=False)

    def start(self) -> SentEvents:
        self._thread.start()
        wait_for(lambda: self._receiver is not None, 10)
        time.sleep(1.0)  # the subscription is live once the first drain has begun
        return self

    def stop(self) -> None:
        if self._receiver is not None:
            self._receiver.should_stop = True
        self._thread.join(timeout=5)


def percentiles(values_ms: list[float]) -> dict[str, float]:
    if not values_ms:
        return {"n": 0, "p50": float("nan"), "p99": float("nan"), "max": float("nan")}
    ordered = sorted(values_ms)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return {"n": len(ordered), "p50": at(0.50), "p99": at(0.99), "max": ordered[-1]}


def run(infra: Infra, results: Results, plan: LatenessPlan) -> None:
    runs = [(store, False) for store in plan.beat_stores]
    runs += [(store, True) for store in plan.stores]
    for store, with_workers in runs:
        with infra.database(store) as url:
            row = _measure(infra, plan, store, url, with_workers)
        results.add("lateness", **row)
        s, t = row["sent_ms"], row["started_ms"]
        step(
            f"lateness: {store}/{row['workers']}: sent {row['slots_sent']}/"
            f"{row['slots_expected']}, p50 {s['p50']:.0f} ms, p99 {s['p99']:.0f} ms; "
            f"started {row['slots_started']}, p50 {t['p50']:.0f} ms, p99 {t['p99']:.0f} ms"
        )


def _ping(app: Celery) -> bool:
    try:
        return bool(app.control.ping(timeout=0.5))
    except Exception:
        return False


def _runs_started(engine: Engine, start: datetime, end: datetime) -> dict[datetime, list[datetime]]:
    r = producer_runs.c
    with engine.connect() as conn:
        rows = conn.execute(
            select(r.scheduled_for, r.started_at).where(
                r.scheduled_for >= start, r.scheduled_for < end
            )
        ).all()
    started: dict[datetime, list[datetime]] = {}
    for scheduled_for, started_at in rows:
        started.setdefault(scheduled_for, []).append(started_at)
    return started


def _measure(
    infra: Infra, plan: LatenessPlan, store: str, url: str, with_workers: bool
) -> dict[str, Any]:
    every = plan.interval_s
    # Without workers nothing commits, so each producer's first slot is its only one.
    seconds = plan.seconds if with_workers else every
    env = drumline_env(infra, url, infra.scratch("data"))
    engine = make_engine(url)
    app = drumline_app(env)
    workdir = infra.scratch("lateness")
    with contextlib.ExitStack() as stack:
        if with_workers:
            worker = stack.enter_context(
                running(worker_args("workers.app", "producers"), env, workdir / "worker.log")
            )
            if not wait_for(lambda: _ping(app) or not worker.alive(), 60, 0.5):
                raise RuntimeError(f"worker not ready:\n{worker.log()[-2000:]}")
        events = SentEvents(app).start()
        label = "2 worker processes" if with_workers else "none (beat alone)"
        step(f"lateness: {store}: {plan.producers:,} producers every {every:g}s, workers: {label}")
        beat_cmd = beat_args("workers.app", "beat.scheduler:ProducerScheduler", workdir)
        with running(beat_cmd, env, workdir / "beat.log") as beat:
            # The first slots fall due once beat is up: its start-up is not lateness.
            if not wait_for(lambda: beat.logged(BEAT_READY) or not beat.alive(), 120, 0.2):
                raise RuntimeError(f"beat not ready:\n{beat.log()[-2000:]}")
            first = utc_now() + timedelta(seconds=LEAD_S)
            spacing = timedelta(seconds=every / plan.producers)
            ScheduleSeeder(engine, every=f"{int(every)}s").add(
                plan.producers, lambda i: first + i * spacing
            )
            analyze(engine)
            end = first + timedelta(seconds=seconds)
            time.sleep(max(0.0, (end - utc_now()).total_seconds() + GRACE_S))
        in_window = {uuid: pair for uuid, pair in events.sent.items() if first <= pair[0] < end}
        if with_workers:
            wait_for(
                lambda: _count(_runs_started(engine, first, end)) >= len(in_window),
                plan.drain_s,
                0.5,
            )
    events.stop()
    started = _runs_started(engine, first, end)
    engine.dispose()
    app.close()
    sent_ms = [(ts - at.timestamp()) * 1000 for at, ts in in_window.values()]
    started_ms = [(s - at).total_seconds() * 1000 for at, ss in started.items() for s in ss]
    return {
        "store": store,
        "workers": label,
        "producers": plan.producers,
        "interval_s": every,
        "due_per_s": plan.producers / every,
        "seconds": seconds,
        "slots_expected": int(plan.producers * seconds / every),
        "slots_sent": len(sent_ms),
        "slots_started": len(started_ms),
        "sent_ms": percentiles(sent_ms),
        "started_ms": percentiles(started_ms),
    }


def _count(started: dict[datetime, list[datetime]]) -> int:
    return sum(len(starts) for starts in started.values())

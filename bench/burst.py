"""5. Burst: N producers due at the same instant (the top of the hour); how fast beat drains them.

drumline runs as real `celery beat` processes, one and then two on the same store, then one
beat with a 2-process worker. RedBeat gets the same N due entries in the same run, ticked
in-process (no process start-up, no sleep: the most favourable way to run it).

When each message reached the broker is read from the queue itself: a thread polls `LLEN`
every `POLL_S`, so the k-th message was sent no later than the first poll that saw k messages.
The error is at most one poll interval (plus one round trip); nothing is consumed.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import redis
from sqlalchemy import Engine, func, select, update

from beat.dispatch import PRODUCERS_QUEUE
from bench.apps.common import REDBEAT_QUEUE
from bench.harness import SendCounter, tick_until
from bench.infra import Infra, analyze, drumline_env, step, wait_for
from bench.peers import RedBeatPeer
from bench.procs import BEAT_READY, Child, beat_args, running, worker_args
from bench.report import Results
from bench.seed import FAR_FUTURE, ScheduleSeeder
from models.db import make_engine
from models.tables import producer_runs, producer_schedules
from models.types import utc_now

POLL_S = 0.005
# From making the rows due to the instant they fall due: longer than beat's longest sleep
# (DRUMLINE_BEAT_MAX_INTERVAL_SECONDS, 1 s), so beat knows of them before they fall due.
LEAD_S = 5.0


@dataclass(frozen=True)
class BurstPlan:
    due: int
    stores: tuple[str, ...]
    # The run with workers: the first `worker_due` of the burst (workers run ~150-200/s here).
    worker_due: int = 10_000
    timeout_s: float = 600.0


class QueueWatcher:
    """Samples a Redis list's length every `POLL_S`: (wall-clock time, length) pairs."""

    def __init__(self, client: redis.Redis, queue: str, target: int) -> None:
        self.client = client
        self.queue = queue
        self.target = target
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="queue-watcher", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            length = int(self.client.llen(self.queue))
            self.samples.append((time.time(), length))
            if length >= self.target:
                return
            self._stop.wait(POLL_S)

    def __enter__(self) -> QueueWatcher:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def done(self) -> bool:
        return bool(self.samples) and self.samples[-1][1] >= self.target

    def sent_at(self, k: int) -> float | None:
        """Wall-clock time by which the k-th message (1-based) had reached the queue."""
        for at, length in self.samples:
            if length >= k:
                return at
        return None


def lateness_ms(watcher: QueueWatcher, due_at: float, n: int) -> dict[str, float]:
    """p50, p99 and last send lateness of n messages all due at `due_at`, in ms."""

    def at(q: float) -> float:
        sent = watcher.sent_at(max(1, math.ceil(q * n)))
        return float("nan") if sent is None else (sent - due_at) * 1000

    return {"p50": at(0.50), "p99": at(0.99), "last": at(1.0)}


def run(infra: Infra, results: Results, plan: BurstPlan) -> None:
    for store in plan.stores:
        with infra.database(store) as url:
            engine = make_engine(url)
            ScheduleSeeder(engine).grow_to(plan.due, due=0)
            analyze(engine)
            env = drumline_env(infra, url, infra.scratch("data"))
            for beats in (1, 2):
                _add(results, _drumline(infra, env, engine, plan.due, beats, workers=False))
            worker_due = min(plan.due, plan.worker_due)
            _add(results, _drumline(infra, env, engine, worker_due, 1, workers=True))
            engine.dispose()
    _add(results, _redbeat(infra, plan))


def _add(results: Results, row: dict[str, Any]) -> None:
    results.add("burst", **row)
    sent = row["sent_ms"]
    started = row.get("last_started_s")
    step(
        f"burst: {row['system']}/{row['store']} x{row['beats']}: {row['sent']:,}/{row['due']:,}"
        f" sent in {row['drain_s']:.2f}s ({row['rate']:,.0f}/s), p50 {sent['p50']:.0f} ms,"
        f" p99 {sent['p99']:.0f} ms"
        + ("" if started is None else f"; last started after {started:.1f}s")
    )


def _reset(engine: Engine) -> None:
    """Every schedule a day away and unclaimed; no runs recorded."""
    with engine.begin() as conn:
        conn.execute(
            update(producer_schedules).values(
                next_run_at=utc_now() + FAR_FUTURE, claimed_until=None, claim_token=None
            )
        )
        conn.execute(producer_runs.delete())


def _make_due(engine: Engine, n: int, at: datetime) -> None:
    """The first n schedules (by id) fall due at `at`."""
    s = producer_schedules.c
    first_ids = select(s.id).order_by(s.id).limit(n).scalar_subquery()
    with engine.begin() as conn:
        conn.execute(update(producer_schedules).where(s.id.in_(first_ids)).values(next_run_at=at))
    analyze(engine)


def _runs_started(engine: Engine) -> tuple[int, datetime | None]:
    r = producer_runs.c
    with engine.connect() as conn:
        count, last = conn.execute(select(func.count(), func.max(r.started_at))).one()
    if last is not None and not isinstance(last, datetime):
        last = datetime.fromisoformat(str(last))
    if last is not None and last.tzinfo is None:
        last = last.replace(tzinfo=UTC)  # SQLite keeps UTC without the offset
    return int(count), last


def _drumline(
    infra: Infra, env: dict[str, str], engine: Engine, n: int, beats: int, *, workers: bool
) -> dict[str, Any]:
    store = engine.dialect.name
    client = infra.redis()
    client.delete(PRODUCERS_QUEUE)
    _reset(engine)
    workdir = infra.scratch(f"burst-{store}-{beats}")
    label = f"{beats} beat{'s' if beats > 1 else ''}" + (", 2 worker processes" if workers else "")
    step(f"burst: drumline/{store}: {n:,} due at once, {label}")
    with contextlib.ExitStack() as stack:
        children: list[Child] = []
        for b in range(beats):
            argv = beat_args("workers.app", "beat.scheduler:ProducerScheduler", workdir / f"b{b}")
            (workdir / f"b{b}").mkdir()
            children.append(stack.enter_context(running(argv, env, workdir / f"beat{b}.log")))
        if workers:
            argv = worker_args("workers.app", PRODUCERS_QUEUE)
            children.append(stack.enter_context(running(argv, env, workdir / "worker.log")))
        # The slots fall due once every beat is up, as at the top of an hour.
        ready = wait_for(lambda: all(c.logged(BEAT_READY) for c in children[:beats]), 120)
        due_at = utc_now() + timedelta(seconds=LEAD_S)
        _make_due(engine, n, due_at)
        in_time = utc_now() < due_at - timedelta(seconds=1)
        watcher = stack.enter_context(QueueWatcher(client, PRODUCERS_QUEUE, n))
        if workers:
            wait_for(lambda: _runs_started(engine)[0] >= n, LEAD_S + 600, 0.25)
        else:
            wait_for(watcher.done, LEAD_S + 600, 0.05)
    client.delete(PRODUCERS_QUEUE)
    client.close()
    row = _row("drumline", store, n, beats, watcher, due_at.timestamp(), workers=workers)
    if workers:
        started, last = _runs_started(engine)
        row["started"] = started
        row["last_started_s"] = (last - due_at).total_seconds() if last else None
    if not ready:
        row["note"] = "a beat was not ready within 120 s"
    elif not in_time:
        row["note"] = "the rows were made due less than 1 s before they fell due"
    return row


def _row(
    system: str,
    store: str,
    n: int,
    beats: int,
    watcher: QueueWatcher,
    due_at: float,
    *,
    workers: bool = False,
) -> dict[str, Any]:
    if workers:
        # Workers consume the queue: its length says nothing about what was sent.
        nan = float("nan")
        return {
            "system": system,
            "store": store,
            "due": n,
            "beats": beats,
            "workers": 2,
            "sent": n,
            "drain_s": nan,
            "rate": nan,
            "sent_ms": {"p50": nan, "p99": nan, "last": nan},
        }
    sent = watcher.samples[-1][1] if watcher.samples else 0
    lateness = lateness_ms(watcher, due_at, n)
    drain = lateness["last"] / 1000
    return {
        "system": system,
        "store": store,
        "due": n,
        "beats": beats,
        "workers": 0,
        "sent": sent,
        "drain_s": drain,
        "rate": n / drain if drain > 0 else float("nan"),
        "sent_ms": lateness,
    }


def _redbeat(infra: Infra, plan: BurstPlan) -> dict[str, Any]:
    from bench.apps.redbeat_app import build

    client = infra.redis()
    client.delete(REDBEAT_QUEUE)
    peer = RedBeatPeer(build(infra.redis_url), client)
    peer.grow_to(plan.due, due=plan.due)
    scheduler = peer.scheduler()
    step(f"burst: RedBeat: {plan.due:,} due entries, ticked in-process")
    try:
        with SendCounter() as counter, QueueWatcher(client, REDBEAT_QUEUE, plan.due) as watcher:
            began = time.time()
            tick_until(scheduler, counter, plan.due, timeout=plan.timeout_s)
            wait_for(watcher.done, 5, POLL_S)
    finally:
        scheduler.close()
        peer.clear()
        client.delete(REDBEAT_QUEUE)
        client.close()
    row = _row("RedBeat", "redis", plan.due, 1, watcher, began)
    row["note"] = "lateness from the start of its tick"
    return row

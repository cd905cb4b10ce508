"""3. End to end: committed `demo.noop` runs per second beside raw Celery no-op tasks."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, func, select

from bench.apps.common import DONE_KEY, NOOP_TASK, RAW_QUEUE, drumline_celery_settings, plain_app
from bench.cpu import PidLister, cpu_seconds, describe, per_task, process_tree
from bench.harness import SendCounter, tick_until
from bench.infra import Infra, analyze, drumline_app, drumline_env, step, wait_for
from bench.procs import Child, running, worker_args
from bench.report import Results
from bench.seed import ScheduleSeeder
from models.db import make_engine
from models.tables import producer_runs
from models.vocabulary import RunStatus

CONCURRENCY = 2
DRUMLINE = "drumline demo.noop"
# What task events cost a worker: drumline turns them on for Flower.
EVENTS_OFF = {"worker_send_task_events": False, "task_send_sent_event": False}


@dataclass(frozen=True)
class EndToEndPlan:
    tasks: int
    timeout_s: float = 300.0


def run(infra: Infra, results: Results, plan: EndToEndPlan, stores: tuple[str, ...]) -> None:
    raw(infra, results, plan, settings="plain")
    raw(infra, results, plan, settings="drumline")
    raw(infra, results, plan, settings="drumline", overrides=EVENTS_OFF, label="events off")
    for store in stores:
        drumline(infra, results, plan, store)
        drumline(infra, results, plan, store, task_events="off")


def _add(
    results: Results,
    system: str,
    store: str,
    n: int,
    seconds: float,
    note: str,
    cpu_ms: dict[str, float],
) -> None:
    rate = (n - 1) / seconds if seconds > 0 and n > 1 else float("nan")
    note = f"{note}; {describe(cpu_ms)}" if note else describe(cpu_ms)
    results.add(
        "end_to_end",
        system=system,
        store=store,
        tasks=n,
        seconds=seconds,
        rate=rate,
        note=note,
        cpu_ms=cpu_ms,
    )
    step(f"end to end: {system}/{store}: {n:,} in {seconds:.1f}s = {rate:,.0f}/s")


def raw(
    infra: Infra,
    results: Results,
    plan: EndToEndPlan,
    *,
    settings: str,
    overrides: dict[str, Any] | None = None,
    label: str = "",
) -> None:
    """Preload no-op messages, then time a 2-process prefork worker from first to last finish."""
    client = infra.redis()
    client.delete(DONE_KEY, RAW_QUEUE)
    app = plain_app("bench-e2e-raw", infra.redis_url)
    if settings == "drumline":
        app.conf.update(drumline_celery_settings(infra.redis_url))
    app.conf.update(overrides or {})
    with app.producer_or_acquire() as producer, producer.batch():
        for _ in range(plan.tasks):
            app.send_task(NOOP_TASK, queue=RAW_QUEUE, producer=producer)
    app.close()
    env = {
        "BENCH_REDIS_URL": infra.redis_url,
        "BENCH_RAW_SETTINGS": settings,
        "BENCH_RAW_OVERRIDES": json.dumps(overrides or {}),
    }
    workdir = infra.scratch("raw-worker")
    args = worker_args("bench.apps.raw", RAW_QUEUE, concurrency=CONCURRENCY)
    with running(args, env, workdir / "worker.log") as worker:
        kinds = _kinds(infra, worker)
        first, before = _at_first(lambda: int(client.llen(DONE_KEY)), worker, kinds, plan)
        done = wait_for(
            lambda: int(client.llen(DONE_KEY)) >= plan.tasks or not worker.alive(),
            plan.timeout_s,
            0.25,
        )
        cpu = per_task(before, cpu_seconds(kinds), int(client.llen(DONE_KEY)) - first)
    stamps = sorted(float(x) for x in client.lrange(DONE_KEY, 0, -1))
    client.delete(DONE_KEY, RAW_QUEUE)
    client.close()
    system = "raw Celery no-op" if settings == "plain" else "raw Celery no-op, drumline's settings"
    note = "Celery defaults" if settings == "plain" else "acks_late, prefetch 1, task events"
    if overrides:
        system += f", {label}" if label else ""
        note = "drumline's settings but " + ", ".join(f"{k}={v}" for k, v in overrides.items())
    if not done:
        note += f"; timed out after {plan.timeout_s:g}s"
    seconds = stamps[-1] - stamps[0] if len(stamps) > 1 else float("nan")
    _add(results, system, "redis", len(stamps), seconds, note, cpu)


def preload_drumline(env: dict[str, str], engine: Engine, tasks: int) -> None:
    """Seed `tasks` due schedules (run: demo.noop) and let beat send them all, in-process."""
    from beat.scheduler import ProducerScheduler

    ScheduleSeeder(engine).grow_to(tasks, due=tasks)
    analyze(engine)
    scheduler = ProducerScheduler(app=drumline_app(env), lazy=True)
    with SendCounter() as counter:
        tick_until(scheduler, counter, tasks, timeout=300)
    scheduler.close()


def succeeded_runs(engine: Engine) -> int:
    with engine.connect() as conn:
        query = select(func.count()).where(producer_runs.c.status == RunStatus.SUCCEEDED)
        return int(conn.execute(query).scalar_one())


def _finish_span(engine: Engine) -> tuple[int, float]:
    r = producer_runs.c
    with engine.connect() as conn:
        row = conn.execute(
            select(func.count(), func.min(r.finished_at), func.max(r.finished_at)).where(
                r.status == RunStatus.SUCCEEDED
            )
        ).one()
    count, first, last = row
    if not isinstance(first, datetime) or not isinstance(last, datetime):
        first, last = _parse(first), _parse(last)
    return int(count), (last - first).total_seconds() if count > 1 else float("nan")


def _parse(value: Any) -> datetime:
    from datetime import UTC

    return datetime.fromisoformat(str(value)).replace(tzinfo=UTC)


def drumline(
    infra: Infra, results: Results, plan: EndToEndPlan, store: str, *, task_events: str = "all"
) -> None:
    """Preload run_producer messages, then time the worker from first to last committed run."""
    with infra.database(store) as url:
        env = {
            **drumline_env(infra, url, infra.scratch("data")),
            "DRUMLINE_TASK_EVENTS": task_events,
        }
        engine = make_engine(url)
        preload_drumline(env, engine, plan.tasks)
        workdir = infra.scratch("worker")
        args = worker_args("workers.app", "producers", concurrency=CONCURRENCY)
        with running(args, env, workdir / "worker.log") as worker:
            kinds = {**_kinds(infra, worker), "postgres": lambda: process_tree(infra.pg_pid)}
            first, before = _at_first(lambda: succeeded_runs(engine), worker, kinds, plan)
            done = wait_for(
                lambda: succeeded_runs(engine) >= plan.tasks or not worker.alive(),
                plan.timeout_s,
                0.5,
            )
            cpu = per_task(before, cpu_seconds(kinds), succeeded_runs(engine) - first)
        count, seconds = _finish_span(engine)
        engine.dispose()
    note = "" if done else f"timed out after {plan.timeout_s:g}s"
    system = DRUMLINE if task_events == "all" else f"{DRUMLINE}, DRUMLINE_TASK_EVENTS={task_events}"
    _add(results, system, store, count, seconds, note, cpu)


def _kinds(infra: Infra, worker: Child) -> dict[str, PidLister]:
    """The worker's process tree, and Redis (the broker, and drumline's lock store)."""
    redis_process = infra.redis_server.process
    assert redis_process is not None
    return {
        "worker": lambda: [worker.pid, *worker.children()],
        "redis": lambda: [redis_process.pid],
    }


def _at_first(
    finished: Callable[[], int], worker: Child, kinds: dict[str, PidLister], plan: EndToEndPlan
) -> tuple[int, dict[str, float]]:
    """Wait for the first finished task; then the count so far and each kind's CPU seconds."""
    wait_for(lambda: finished() >= 1 or not worker.alive(), plan.timeout_s, 0.02)
    return finished(), cpu_seconds(kinds)

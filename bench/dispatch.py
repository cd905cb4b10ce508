"""2. Dispatch rate: D due at once, sent per second, beside what Redis and Celery allow."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from beat.dispatch import PRODUCERS_QUEUE
from bench.apps.common import DJANGO_QUEUE, RAW_QUEUE, REDBEAT_QUEUE, drumline_celery_settings
from bench.baselines import batched_send_task, pipeline_ceiling, raw_send_task
from bench.harness import SendCounter, tick_until
from bench.infra import Infra, analyze, drumline_app, drumline_env, median, step
from bench.peers import DjangoPeer, RedBeatPeer
from bench.report import Results
from bench.seed import ScheduleSeeder, release_claims
from models.db import make_engine

SENT_EVENTS_OFF = "drumline beat, task-sent events off"


@dataclass(frozen=True)
class DispatchPlan:
    due: int
    repeats: int
    peer_window_s: float
    extra_repeats: int = 1
    timeout_s: float = 120.0


def run(infra: Infra, results: Results, plan: DispatchPlan, stores: tuple[str, ...]) -> None:
    with SendCounter() as counter:
        baselines(infra, results, plan)
        for store in stores:
            drumline(infra, results, plan, store, counter)
        redbeat(infra, results, plan, counter)
        django(infra, results, plan, counter)


def _add(
    results: Results, sender: str, store: str, sent: int, seconds: list[float], note: str = ""
) -> None:
    secs = median(seconds)
    row = {
        "sender": sender,
        "store": store,
        "sent": sent,
        "seconds": secs,
        "rate": sent / secs if secs else float("nan"),
        "samples_s": seconds,
        "note": note,
    }
    results.add("dispatch", **row)
    step(f"dispatch: {sender}/{store}: {row['rate']:,.0f}/s (median of {len(seconds)})")


def baselines(infra: Infra, results: Results, plan: DispatchPlan) -> None:
    from bench.apps.common import plain_app

    client = infra.redis()
    n = plan.due
    plain = plain_app("bench-baseline", infra.redis_url)
    like_drumline = plain_app("bench-baseline-drumline", infra.redis_url)
    like_drumline.conf.update(drumline_celery_settings(infra.redis_url))
    runs: dict[str, list[float]] = {}
    measures: list[tuple[str, int, Callable[[], float]]] = [
        ("raw send_task", plan.repeats, lambda: raw_send_task(plain, n, RAW_QUEUE)),
        (
            "raw send_task, drumline's Celery settings",
            plan.extra_repeats,
            lambda: raw_send_task(like_drumline, n, RAW_QUEUE),
        ),
        (
            "send_task in Producer.batch()",
            plan.repeats,
            lambda: batched_send_task(plain, n, RAW_QUEUE),
        ),
        (
            "LPUSH pipeline (ceiling)",
            plan.repeats,
            lambda: pipeline_ceiling(plain, client, n, RAW_QUEUE),
        ),
    ]
    for label, repeats, measure in measures:
        for _ in range(repeats):
            runs.setdefault(label, []).append(measure())
            client.delete(RAW_QUEUE)
    notes = {
        "raw send_task, drumline's Celery settings": "adds a task-sent event per message",
        "LPUSH pipeline (ceiling)": "ready-made messages, 1,000 per round trip",
    }
    for label, seconds in runs.items():
        _add(results, label, "redis", n, seconds, notes.get(label, ""))
    plain.close()
    like_drumline.close()
    client.close()


def drumline(infra: Infra, results: Results, plan: DispatchPlan, store: str, counter: Any) -> None:
    from beat.scheduler import ProducerScheduler

    with infra.database(store) as url:
        env = drumline_env(infra, url, infra.scratch("data"))
        engine = make_engine(url)
        ScheduleSeeder(engine).grow_to(plan.due, due=plan.due)
        analyze(engine)
        client = infra.redis()
        # As configured (a task-sent event per message, for Flower), and without the events:
        # like for like with raw send_task on Celery's defaults.
        variants = [("drumline beat", {}), (SENT_EVENTS_OFF, {"task_send_sent_event": False})]
        schedulers = {}
        for label, overrides in variants:
            app = drumline_app(env)
            app.conf.update(overrides)
            schedulers[label] = ProducerScheduler(app=app, lazy=True)
        # Interleaved, so a change in the machine's load falls on both variants alike.
        seconds: dict[str, list[float]] = {label: [] for label in schedulers}
        sent: dict[str, list[int]] = {label: [] for label in schedulers}
        for _ in range(plan.repeats):
            for label, scheduler in schedulers.items():
                release_claims(engine)
                client.delete(PRODUCERS_QUEUE)
                ran = tick_until(scheduler, counter, plan.due, timeout=plan.timeout_s)
                seconds[label].append(ran.seconds)
                sent[label].append(ran.sent)
        for label, scheduler in schedulers.items():
            scheduler.close()
            note = f"batch {scheduler.settings.batch}"
            _add(results, label, store, min(sent[label]), seconds[label], note)
        release_claims(engine)
        client.delete(PRODUCERS_QUEUE)
        client.close()
        engine.dispose()


def redbeat(infra: Infra, results: Results, plan: DispatchPlan, counter: Any) -> None:
    from bench.apps.redbeat_app import build

    client = infra.redis()
    peer = RedBeatPeer(build(infra.redis_url), client)
    peer.grow_to(plan.due, due=plan.due)
    scheduler = peer.scheduler()
    try:
        ran = tick_until(scheduler, counter, plan.due, timeout=plan.timeout_s)
    finally:
        scheduler.close()
        peer.clear()
        client.delete(REDBEAT_QUEUE)
        client.close()
    _add(results, "RedBeat", "redis", ran.sent, [ran.seconds], "one tick sends every due entry")


def django(infra: Infra, results: Results, plan: DispatchPlan, counter: Any) -> None:
    from bench.apps.django_app import app as django_celery

    django_celery.conf.broker_url = infra.redis_url
    peer = DjangoPeer(infra.django_url())
    peer.grow_to(plan.due, due=plan.due)
    scheduler = peer.scheduler(django_celery)
    began = time.perf_counter()
    _ = scheduler.schedule
    load = time.perf_counter() - began
    ran = tick_until(scheduler, counter, plan.due, timeout=plan.peer_window_s)
    peer.discard(scheduler)
    peer.clear()
    client = infra.redis()
    client.delete(DJANGO_QUEUE)
    client.close()
    note = f"{plan.peer_window_s:g} s window after a {load:.1f} s load; one task per tick"
    _add(results, "django-celery-beat", "postgresql", ran.sent, [ran.seconds], note)

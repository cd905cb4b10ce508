"""1. Tick cost against N: claim and send D due schedules, the idle tick, beat's peak RSS."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from bench.apps.common import DJANGO_QUEUE, REDBEAT_QUEUE
from bench.harness import SendCounter, tick_until, timed_tick
from bench.infra import Infra, analyze, drumline_app, drumline_env, median, step, wait_for
from bench.peers import DjangoPeer, RedBeatPeer
from bench.procs import beat_args, running
from bench.report import Results
from bench.seed import ScheduleSeeder, release_claims
from models.db import make_engine

PRODUCERS_QUEUE = "producers"
RSS_SETTLE_S = 2.0


@dataclass(frozen=True)
class TickPlan:
    sizes: list[int]
    django_sizes: list[int]
    due: int = 100
    samples: int = 5
    budget_s: float = 60.0
    rss_timeout_s: float = 45.0


def run(infra: Infra, results: Results, plan: TickPlan, stores: tuple[str, ...]) -> None:
    with SendCounter() as counter:
        for store in stores:
            drumline(infra, results, plan, store, counter)
        redbeat(infra, results, plan, counter)
        django(infra, results, plan, counter)


def beat_rss(
    infra: Infra,
    app: str,
    scheduler: str,
    env: dict[str, str],
    queue: str,
    due: int,
    timeout: float,
) -> tuple[float, int]:
    """Peak RSS of a real `celery beat` process once it has sent `due` messages, and the count."""
    client = infra.redis()
    client.delete(queue)
    workdir = infra.scratch("beat")
    with running(beat_args(app, scheduler, workdir), env, workdir / "beat.log") as beat:
        wait_for(lambda: int(client.llen(queue)) >= due or not beat.alive(), timeout, 0.05)
        time.sleep(RSS_SETTLE_S)  # a few idle ticks after the burst
        if not beat.alive():
            raise RuntimeError(f"beat exited early:\n{beat.log()[-2000:]}")
        peak = beat.peak_rss_mib()
    sent = int(client.llen(queue))
    client.delete(queue)
    client.close()
    return peak, sent


def _note(sent: int, due: int) -> str:
    return "" if sent >= due else f"sent {sent}/{due}"


def drumline(infra: Infra, results: Results, plan: TickPlan, store: str, counter: Any) -> None:
    from beat.scheduler import ProducerScheduler

    with infra.database(store) as url:
        env = drumline_env(infra, url, infra.scratch("data"))
        engine = make_engine(url)
        seeder = ScheduleSeeder(engine)
        app = drumline_app(env)
        scheduler = ProducerScheduler(app=app, lazy=True)
        client = infra.redis()
        try:
            for n in plan.sizes:
                began = time.perf_counter()
                seeder.grow_to(n, due=plan.due)
                analyze(engine)
                step(f"tick: drumline/{store} N={n:,} seeded in {time.perf_counter() - began:.1f}s")
                release_claims(engine)
                scheduler.tick()  # warm-up: connections, compiled statements
                sends, idles, sent = [], [], []
                for _ in range(plan.samples):
                    release_claims(engine)
                    client.delete(PRODUCERS_QUEUE)
                    before = counter.count
                    sends.append(timed_tick(scheduler))
                    sent.append(counter.count - before)
                    idles.append(timed_tick(scheduler))
                release_claims(engine)
                rss, rss_sent = beat_rss(
                    infra,
                    "workers.app",
                    "beat.scheduler:ProducerScheduler",
                    env,
                    PRODUCERS_QUEUE,
                    plan.due,
                    plan.rss_timeout_s,
                )
                row = _row("drumline", store, n, sends, idles, None, rss, min(sent), plan.due)
                row["note"] = _join(row["note"], _rss_note(rss_sent, plan))
                results.add("tick", **row)
                step(_summary(row))
        finally:
            scheduler.close()
            client.delete(PRODUCERS_QUEUE)
            client.close()
            engine.dispose()


def redbeat(infra: Infra, results: Results, plan: TickPlan, counter: Any) -> None:
    from bench.apps.redbeat_app import build

    app = build(infra.redis_url)
    client = infra.redis()
    peer = RedBeatPeer(app, client)
    scheduler = peer.scheduler()
    env = {"BENCH_REDIS_URL": infra.redis_url}
    try:
        for n in plan.sizes:
            began = time.perf_counter()
            peer.grow_to(n, due=plan.due)
            step(f"tick: RedBeat N={n:,} seeded in {time.perf_counter() - began:.1f}s")
            peer.make_due()
            scheduler.tick()
            sends, idles, sent = [], [], []
            for _ in range(plan.samples):
                peer.make_due()
                client.delete(REDBEAT_QUEUE)
                before = counter.count
                sends.append(timed_tick(scheduler))
                sent.append(counter.count - before)
                idles.append(timed_tick(scheduler))
            peer.make_due()
            rss, rss_sent = beat_rss(
                infra,
                "bench.apps.redbeat_app",
                "redbeat.RedBeatScheduler",
                env,
                REDBEAT_QUEUE,
                plan.due,
                plan.rss_timeout_s,
            )
            row = _row("RedBeat", "redis", n, sends, idles, None, rss, min(sent), plan.due)
            row["note"] = _join(row["note"], _rss_note(rss_sent, plan))
            results.add("tick", **row)
            step(_summary(row))
    finally:
        scheduler.close()
        peer.clear()
        client.delete(REDBEAT_QUEUE)
        client.close()


def django(infra: Infra, results: Results, plan: TickPlan, counter: Any) -> None:
    from bench.apps.django_app import app as django_celery

    url = infra.django_url()
    peer = DjangoPeer(url)
    client = infra.redis()
    env = {"BENCH_REDIS_URL": infra.redis_url, "BENCH_DJANGO_DB_URL": url}
    django_celery.conf.broker_url = infra.redis_url
    try:
        for n in plan.django_sizes:
            began = time.perf_counter()
            peer.grow_to(n, due=plan.due)
            step(f"tick: django-celery-beat N={n:,} seeded in {time.perf_counter() - began:.1f}s")
            sends, idles, loads, sent = [], [], [], []
            deadline = time.monotonic() + plan.budget_s
            for _ in range(plan.samples):
                peer.make_due()
                client.delete(DJANGO_QUEUE)
                scheduler = peer.scheduler(django_celery)
                loaded = time.perf_counter()
                _ = scheduler.schedule  # the initial read of every enabled row
                loads.append(time.perf_counter() - loaded)
                ran = tick_until(scheduler, counter, plan.due, timeout=plan.budget_s)
                sends.append(ran.seconds)
                sent.append(ran.sent)
                idles.append(median([timed_tick(scheduler) for _ in range(5)]))
                peer.discard(scheduler)
                if time.monotonic() > deadline:
                    break
            peer.make_due()
            rss, rss_sent = beat_rss(
                infra,
                "bench.apps.django_app",
                "django_celery_beat.schedulers:DatabaseScheduler",
                env,
                DJANGO_QUEUE,
                plan.due,
                plan.rss_timeout_s,
            )
            row = _row(
                "django-celery-beat", "postgresql", n, sends, idles, loads, rss, min(sent), plan.due
            )
            row["note"] = _join(
                row["note"],
                f"one task per tick; {len(sends)} sample(s)",
                _rss_note(rss_sent, plan),
            )
            results.add("tick", **row)
            step(_summary(row))
    finally:
        peer.clear()
        client.delete(DJANGO_QUEUE)
        client.close()
    skipped = [n for n in plan.sizes if n not in plan.django_sizes]
    if skipped:
        results.notes.append(
            f"django-celery-beat ran up to N = {max(plan.django_sizes):,} only: each of its"
            " ticks costs O(N) and sends one task (`--quick` stops at 10,000, `--full` at"
            " 100,000)."
        )


def _row(
    system: str,
    store: str,
    n: int,
    sends: list[float],
    idles: list[float],
    loads: list[float] | None,
    rss: float,
    sent: int,
    due: int,
) -> dict[str, Any]:
    return {
        "system": system,
        "store": store,
        "n": n,
        "due": due,
        "send_due_ms": median(sends) * 1000,
        "send_due_samples_ms": [s * 1000 for s in sends],
        "idle_tick_ms": median(idles) * 1000,
        "load_ms": median(loads) * 1000 if loads else None,
        "rss_mib": rss,
        "note": _note(sent, due),
    }


def _summary(row: dict[str, Any]) -> str:
    return (
        f"tick: {row['system']}/{row['store']} N={row['n']:,}: "
        f"send {row['send_due_ms']:.1f} ms, idle {row['idle_tick_ms']:.2f} ms, "
        f"RSS {row['rss_mib']:.0f} MiB {row['note']}"
    )


def _rss_note(sent: int, plan: TickPlan) -> str:
    if sent >= plan.due:
        return ""
    return f"RSS beat sent {sent}/{plan.due} in {plan.rss_timeout_s:g}s"


def _join(*notes: str) -> str:
    return "; ".join(note for note in notes if note)

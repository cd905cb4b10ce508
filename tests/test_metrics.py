"""Metrics end to end: real beat, prefork workers whose pool processes are replaced, Redis, both
databases, and `drumline exporter` scraped over HTTP; what it serves matches the database."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import redis
import yaml
from sqlalchemy import Engine, text

from beat.dispatch import PRODUCERS_QUEUE
from tests.e2e import deploy, wait_until
from tests.monitoring import running_exporter, scrape, total
from tests.processes import CeleryProcess, running_beat
from workers.local.celery_argv import worker_argv

RULES = Path(__file__).resolve().parents[1] / "compose" / "prometheus" / "rules.yml"
RUNS_WANTED = 8
CONCURRENCY = 2


def metered() -> dict[str, object]:
    return {
        "name": "metered",
        "producers": {
            "ok": {"run": "demo.noop", "interval": "1s"},
            "bad": {"run": "demo.fail", "interval": "1s", "params": {"message": "boom"}},
        },
    }


def scheduled_runs(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT status, count(*) FROM producer_runs WHERE trigger = 'schedule'"
                " GROUP BY status"
            )
        ).all()
    return {str(status): int(count) for status, count in rows}


def drained(engine: Engine, broker: redis.Redis) -> bool:
    """No message queued or held by a worker, and no run still going."""
    return (
        broker.llen(PRODUCERS_QUEUE) == 0
        and broker.hlen("unacked") == 0
        and "running" not in scheduled_runs(engine)
    )


def test_scraped_counters_and_histograms_match_the_database(
    env: Mapping[str, str], engine: Engine, redis_client: redis.Redis, tmp_path: Path
) -> None:
    # Every task in a fresh pool process: pool processes are replaced all along.
    argv = [*worker_argv("w1", concurrency=CONCURRENCY, peers=False), "--max-tasks-per-child=1"]
    worker = CeleryProcess(argv, env, tmp_path / "worker.log")
    worker.start()
    try:
        worker.wait_for_log("ready.")
        deploy(env, metered())
        with running_beat(env, tmp_path):
            wait_until(
                lambda: sum(scheduled_runs(engine).values()) >= RUNS_WANTED,
                60,
                f"{RUNS_WANTED} scheduled runs",
            )
        wait_until(lambda: drained(engine, redis_client), 60, "every sent slot to finish")
        runs = scheduled_runs(engine)
        with running_exporter(env, tmp_path) as url:
            samples = scrape(url)
    finally:
        worker.stop()

    assert set(runs) == {"succeeded", "failed"}, runs
    for status, count in runs.items():
        served = total(samples, "drumline_runs_total", workflow="metered", outcome=status)
        assert served == count, (status, served, runs)
    started = sum(runs.values())
    lateness = "drumline_run_start_lateness_seconds"
    assert total(samples, f"{lateness}_count", workflow="metered") == started
    assert total(samples, f"{lateness}_bucket", workflow="metered", le="+Inf") == started
    assert total(samples, "drumline_run_duration_seconds_count", workflow="metered") == started
    # Beat sent each slot once: a run for each, or a message that ran nothing.
    sent = total(samples, "drumline_beat_slots_sent_total")
    dropped = total(samples, "drumline_run_messages_dropped_total")
    assert sent == started + dropped, (sent, started, dropped)
    assert total(samples, "drumline_beat_send_lateness_seconds_count") == sent
    # From the database, per producer.
    assert total(samples, "drumline_producer_consecutive_failures", producer="bad") >= 1
    assert total(samples, "drumline_producer_consecutive_failures", producer="ok") == 0
    assert total(samples, "drumline_producer_interval_seconds", producer="ok") == 1.0
    assert total(samples, "drumline_exporter_database_up") == 1.0
    # The alert rules name only series the exporter serves.
    exprs = [
        rule["expr"]
        for group in yaml.safe_load(RULES.read_text())["groups"]
        for rule in group["rules"]
    ]
    named = {name for expr in exprs for name in re.findall(r"\bdrumline_\w+", expr)}
    assert named and named <= {name for name, _ in samples}, named - {n for n, _ in samples}
    # The counts above add up over more pool processes than the pool ever held at once.
    metrics_dir = Path(env["DRUMLINE_DATA_DIR"]) / "metrics"
    worker_dirs = list(metrics_dir.glob("worker-*"))
    assert len(worker_dirs) == 1
    # Private: the directory and each process's own.
    for directory in (metrics_dir, *metrics_dir.iterdir()):
        assert directory.stat().st_mode & 0o777 == 0o700, directory
    assert len(list(worker_dirs[0].glob("counter_*.db"))) > CONCURRENCY

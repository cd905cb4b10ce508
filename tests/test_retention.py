"""Run history retention as configured and run: settings, beat entry, cursor, real processes."""

from __future__ import annotations

import logging
import re
from datetime import timedelta
from pathlib import Path

import pytest
import redis
from sqlalchemy import Engine, func, insert, select

from models.run_pruning import ProducerKey
from models.tables import producer_runs
from models.types import utc_now
from tests.databases import new_workflow
from tests.e2e import wait_until
from tests.processes import running_beat, running_worker
from workers.services.prune_cursor import CURSOR_KEY, PruneCursor
from workers.settings import Settings
from workers.tasks.celery_config import PRUNE_RUNS, PRUNE_RUNS_ENTRY, create_app

BASE_ENV = {"DRUMLINE_BROKER_URL": "redis://127.0.0.1:1/0", "DRUMLINE_DATA_DIR": "/nonexistent"}


def settings_with(**variables: str) -> Settings:
    return Settings.from_env({**BASE_ENV, **variables})


def test_retention_defaults_and_zero_turns_a_rule_off() -> None:
    default = settings_with()
    assert default.run_max_age == timedelta(days=30)
    assert default.runs_kept_per_producer == 1000
    assert default.prune_interval == timedelta(seconds=60)
    off = settings_with(DRUMLINE_RUN_RETENTION_DAYS="0", DRUMLINE_RUN_RETENTION_PER_PRODUCER="0")
    assert (off.run_max_age, off.runs_kept_per_producer) == (None, None)
    assert settings_with(DRUMLINE_RUN_RETENTION_DAYS="0.5").run_max_age == timedelta(hours=12)


def test_beat_sends_prune_runs_to_the_lifecycle_queue_beside_a_users_entries() -> None:
    app = create_app(
        settings_with(
            DRUMLINE_CELERY_CONFIG_MODULE="tests.static_beat_config",
            DRUMLINE_PRUNE_INTERVAL_SECONDS="30",
        )
    )
    schedule = app.conf.beat_schedule
    assert set(schedule) == {"static-ping", PRUNE_RUNS_ENTRY}
    assert schedule[PRUNE_RUNS_ENTRY] == {
        "task": PRUNE_RUNS,
        "schedule": 30.0,
        "options": {"queue": "lifecycle", "expires": 30.0},
    }
    off = settings_with(DRUMLINE_RUN_RETENTION_DAYS="0", DRUMLINE_RUN_RETENTION_PER_PRODUCER="0")
    assert create_app(off).conf.beat_schedule == {}


def test_the_prune_cursor_round_trips_and_ignores_what_is_not_a_producer_key(
    redis_client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    cursor = PruneCursor(redis_client)
    assert cursor.load() is None
    cursor.save(ProducerKey(7, "poll"))
    assert cursor.load() == ProducerKey(7, "poll")
    assert 0 < int(redis_client.ttl(CURSOR_KEY)) <= 86_400
    cursor.save(None)
    assert redis_client.exists(CURSOR_KEY) == 0
    for bad in ('[true, "p"]', '[1, ""]', '{"a": 1}', "[1, 2]", "x" * 10_000, '[1, "p\\n"]'):
        redis_client.set(CURSOR_KEY, bad)
        with caplog.at_level(logging.WARNING, logger="drumline.retention"):
            loaded = cursor.load()
        if bad == '[1, "p\\n"]':  # a name with a newline is a key; only its logging escapes
            assert loaded == ProducerKey(1, "p\n")
        else:
            assert loaded is None, bad
    assert caplog.text.count("ignoring drumline:prune-runs:resume-at") == 5
    assert "x" * 300 not in caplog.text


def logged_deletions(log: str) -> tuple[int, int]:
    """The rows that the worker's prune passes say they deleted, by age and by count."""
    passes = re.findall(r"prune_runs: deleted (\d+) runs by age .*? and (\d+) by count", log)
    return sum(int(age) for age, _ in passes), sum(int(count) for _, count in passes)


def test_a_real_beat_and_worker_prune_a_seeded_history(
    drumline_env: dict[str, str], engine: Engine, tmp_path: Path
) -> None:
    now = utc_now()
    workflow_id = new_workflow(engine, "history", {"name": "history"}, now=now).id
    rows = []
    for producer in ("a", "b", "c"):
        for minutes in range(300):  # one run a minute: keep 5 of each
            rows.append((producer, timedelta(minutes=minutes), "succeeded"))
    rows += [("old", timedelta(days=3, minutes=m), "failed") for m in range(50)]  # age only
    rows.append(("old", timedelta(days=4), "running"))  # never deleted
    with engine.begin() as conn:
        conn.execute(
            insert(producer_runs),
            [
                {
                    "workflow_id": workflow_id,
                    "producer_name": producer,
                    "scheduled_for": now - age,
                    "trigger": "schedule",
                    "status": status,
                    "started_at": now - age,
                    "finished_at": None if status == "running" else now - age,
                }
                for producer, age, status in rows
            ],
        )

    def remaining() -> dict[str, int]:
        query = select(producer_runs.c.producer_name, func.count()).group_by(
            producer_runs.c.producer_name
        )
        with engine.connect() as conn:
            return {name: count for name, count in conn.execute(query)}

    assert remaining() == {"a": 300, "b": 300, "c": 300, "old": 51}
    env = {
        **drumline_env,
        "DRUMLINE_PRUNE_INTERVAL_SECONDS": "0.5",
        "DRUMLINE_RUN_RETENTION_DAYS": "2",
        "DRUMLINE_RUN_RETENTION_PER_PRODUCER": "5",
    }
    with running_worker(env, tmp_path) as worker, running_beat(env, tmp_path):
        wait_until(lambda: remaining() == {"a": 5, "b": 5, "c": 5, "old": 1}, 60, "the prune")
        # Passes may overlap (one every 0.5 s, two pool processes): together they log each
        # deleted row once.
        wait_until(lambda: logged_deletions(worker.log()) == (50, 885), 30, "the pass logs")
    with engine.connect() as conn:
        [(status, age)] = conn.execute(
            select(producer_runs.c.status, producer_runs.c.scheduled_for).where(
                producer_runs.c.producer_name == "old"
            )
        ).all()
    assert (status, now - age) == ("running", timedelta(days=4))
    assert "Traceback" not in worker.log()

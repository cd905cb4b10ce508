"""`drumline health` and `drumline beats` against a real beat, worker, Redis and database."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from tests.e2e import wait_until
from tests.monitoring import drumline
from tests.processes import running_beat, running_worker

STALE_S = "2"


@pytest.fixture
def monitored_env(env: Mapping[str, str]) -> dict[str, str]:
    return {**env, "DRUMLINE_BEAT_STALE_SECONDS": STALE_S}


def health(env: Mapping[str, str], *args: str) -> tuple[int, dict[str, Any]]:
    done = drumline(env, "health", "--json", *args)
    assert done.returncode in (0, 1), done.stderr
    return done.returncode, json.loads(done.stdout)


def failed_checks(report: Mapping[str, Any]) -> set[str]:
    return {check["name"] for check in report["checks"] if not check["ok"]}


def test_health_passes_with_a_beat_and_fails_once_it_stopped(
    monitored_env: dict[str, str], tmp_path: Path
) -> None:
    env = monitored_env
    with running_worker(env, tmp_path):
        code, report = health(env)
        assert code == 1 and failed_checks(report) == {"beat"}  # none ever ran
        with running_beat(env, tmp_path):
            wait_until(lambda: health(env)[0] == 0, 30, "drumline health to pass")
            code, report = health(env, "--role", "beat")
            assert code == 0 and [c["name"] for c in report["checks"]] == ["database", "beat"]
            assert health(env, "--role", "worker")[0] == 0
        # The beat stopped: within the staleness bound, health fails, naming the beat only.
        wait_until(lambda: health(env)[0] == 1, 30, "drumline health to fail")
        code, report = health(env)
        assert failed_checks(report) == {"beat"}
        assert health(env, "--role", "beat")[0] == 1
        assert health(env, "--role", "worker")[0] == 0
    text = drumline(env, "health")
    assert text.returncode == 1
    assert "FAIL worker" in text.stdout and "FAIL beat" in text.stdout
    assert text.stdout.rstrip().endswith("unhealthy")


def test_a_stopped_beat_is_marked_stale(monitored_env: dict[str, str], tmp_path: Path) -> None:
    env = monitored_env
    with running_beat(env, tmp_path, "beat1"):
        wait_until(lambda: len(beats(env)) == 1, 30, "the beat's heartbeat")
        (alive,) = beats(env)
        assert alive["stale"] is False and alive["version"]
    wait_until(lambda: beats(env)[0]["stale"] is True, 30, "the beat to be marked stale")
    (stale,) = beats(env)
    assert stale["pid"] == alive["pid"] and stale["seconds_since_tick"] > float(STALE_S)
    table = drumline(env, "beats")
    assert table.returncode == 0 and "stale" in table.stdout


def beats(env: Mapping[str, str]) -> list[dict[str, Any]]:
    done = drumline(env, "beats", "--json")
    assert done.returncode == 0, done.stderr
    listed: list[dict[str, Any]] = json.loads(done.stdout)["beats"]
    return listed


def test_health_fails_when_the_database_and_broker_are_unreachable(
    monitored_env: dict[str, str], tmp_path: Path
) -> None:
    env = {
        **monitored_env,
        "DRUMLINE_DATABASE_URL": f"sqlite:///{tmp_path / 'missing' / 'none.db'}",
        "DRUMLINE_BROKER_URL": "redis://127.0.0.1:1/0",
    }
    code, report = health(env, "--timeout", "0.5")
    assert code == 1
    assert failed_checks(report) == {"database", "broker", "beat", "worker"}

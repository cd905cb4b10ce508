"""compose deploys what the multi-host tests run: the same services and replicas, the same
Celery command lines, settings and Redis persistence, and restart policies on every
long-running service. Static (no Docker engine, no namespaces needed)."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import yaml

from tests.hosts.cluster import BEATS, REDIS_APPENDONLY, SETTINGS, TOPOLOGY, WORKERS, celery_argv
from tests.test_compose import COMPOSE, environment

SHORT = {"-A": "--app", "-S": "--scheduler", "-Q": "--queues", "-l": "--loglevel"}
# Differences that are capacity or local paths, not topology.
LOCAL_ONLY = {"--schedule", "--pidfile", "--concurrency", "--hostname"}
LONG_RUNNING = ("redis", "postgres", "beat", "worker", "flower")
WITH_HEALTHCHECK = ("redis", "postgres", "beat", "worker")


def services() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = yaml.safe_load(COMPOSE.read_text())["services"]
    return found


def shape(argv: list[str]) -> tuple[str, dict[str, str]]:
    """A Celery command line as (subcommand, {long option: value}), paths and capacity left out."""
    args = argv[argv.index("celery") + 1 :] if "celery" in argv else argv[2:]
    options: dict[str, str] = {}
    subcommand = ""
    index = 0
    while index < len(args):
        arg = args[index]
        if arg in SHORT:
            options[SHORT[arg]] = args[index + 1]
            index += 2
            continue
        if arg.startswith("--"):
            name, _, value = arg.partition("=")
            options[name] = value
        elif not subcommand:
            subcommand = arg
        index += 1
    return subcommand, {k: v for k, v in options.items() if k not in LOCAL_ONLY}


def test_the_services_and_replicas_are_the_harness_hosts() -> None:
    compose = services()
    assert {"redis": 1, "postgres": 1, "beat": compose["beat"]["deploy"]["replicas"]} == {
        key: TOPOLOGY[key] for key in ("redis", "postgres", "beat")
    }
    assert f"--scale worker={TOPOLOGY['worker']}" in COMPOSE.read_text()
    assert (len(BEATS), len(WORKERS)) == (TOPOLOGY["beat"], TOPOLOGY["worker"])


def test_beat_and_worker_run_the_same_command_lines() -> None:
    compose = services()
    for service, host in (("beat", BEATS[0]), ("worker", WORKERS[0])):
        assert shape(compose[service]["command"]) == shape(celery_argv(host, Path("/x"))), service


def test_the_settings_are_the_same_and_the_harness_adds_only_short_timings() -> None:
    deployed = environment(services()["worker"])
    # What running_cluster() sets besides SETTINGS: the two URLs (the hosts' addresses), a
    # data dir for its scratch files and the metrics dir (compose's shared volume).
    harness = {
        *SETTINGS,
        "DRUMLINE_BROKER_URL",
        "DRUMLINE_DATABASE_URL",
        "DRUMLINE_DATA_DIR",
        "DRUMLINE_METRICS_DIR",
    }
    assert set(deployed) <= harness
    assert deployed["DRUMLINE_BROKER_URL"].startswith("redis://")
    assert deployed["DRUMLINE_DATABASE_URL"].startswith("postgresql+psycopg://")
    extra = harness - set(deployed) - {"DRUMLINE_DATA_DIR", "DRUMLINE_METRICS_DIR"}
    assert all(name.endswith("_SECONDS") for name in extra), extra


def test_redis_persists_as_in_the_harness() -> None:
    command = shlex.split(services()["redis"]["command"][-1])
    assert ("--appendonly" in command and command[command.index("--appendonly") + 1]) == (
        "yes" if REDIS_APPENDONLY else "no"
    )
    assert command[command.index("--maxmemory-policy") + 1] == "noeviction"


def test_long_running_services_restart_and_have_healthchecks() -> None:
    compose = services()
    for name in LONG_RUNNING:
        assert compose[name]["restart"] == "unless-stopped", name
    for name in WITH_HEALTHCHECK:
        assert compose[name]["healthcheck"]["test"], name
    # A beat is healthy while it ticks (its heartbeat in the database), not merely alive.
    assert compose["beat"]["healthcheck"]["test"] == ["CMD", "drumline", "health", "--role", "beat"]

"""The compose stack, checked against the code without a Docker engine.

Every module, class, subcommand, option and variable that `compose/` names must exist in the
project, so the stack cannot drift from the code unnoticed.
"""

from __future__ import annotations

import importlib
import inspect
import re
import shlex
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import click
import flower.options  # noqa: F401 - defines Flower's options
import pytest
import yaml
from celery import Celery
from celery.beat import Scheduler
from celery.bin.celery import celery as celery_cli
from tornado.options import options as tornado_options

import workers.settings
from models.schedules import parse_interval
from workers.cli.main import cli
from workers.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "compose" / "docker-compose.yml"
DOCKERFILE = ROOT / "compose" / "Dockerfile"
CELERY_SERVICES = ("beat", "worker")
SERVICES_OF_THE_APP = (*CELERY_SERVICES, "flower")
VARIABLE = re.compile(r"\$\{(\w+)(?::?([-?])([^}]*))?\}")
HEALTHY = {"service_started", "service_healthy", "service_completed_successfully"}


@pytest.fixture(scope="module")
def services() -> dict[str, dict[str, Any]]:
    compose = yaml.safe_load(COMPOSE.read_text())
    found: dict[str, dict[str, Any]] = compose["services"]
    return found


def interpolate(text: str) -> str:
    """Compose's substitution with no variable set: defaults apply, the rest get placeholders."""

    def value(match: re.Match[str]) -> str:
        name, operator, default = match.groups()
        return default if operator == "-" else f"<{name.lower()}>"

    return VARIABLE.sub(value, text).replace("$$", "$")


def environment(service: Mapping[str, Any]) -> dict[str, str]:
    return {name: interpolate(str(value)) for name, value in service["environment"].items()}


def argv(command: str | list[str]) -> list[str]:
    return shlex.split(command) if isinstance(command, str) else list(command)


def options_of(command: click.Command) -> set[str]:
    return {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}


def flags(args: list[str]) -> Iterator[str]:
    for arg in args:
        if arg.startswith("-") and not arg.startswith("---"):
            yield arg.split("=", 1)[0]


def check_celery_command(args: list[str]) -> None:
    """`celery -A module <subcommand> options...`: the app, subcommand and options exist."""
    assert args[:2] == ["celery", "-A"], args
    app_module = importlib.import_module(args[2])
    assert isinstance(app_module.app, Celery)
    subcommand = celery_cli.commands[args[3]]
    rest = args[4:]
    unknown = set(flags(rest)) - options_of(subcommand)
    assert not unknown, f"celery {args[3]} has no option {sorted(unknown)}"
    if "-S" in rest:
        module, _, name = rest[rest.index("-S") + 1].partition(":")
        assert issubclass(getattr(importlib.import_module(module), name), Scheduler)


def test_every_celery_service_names_an_app_subcommand_and_options_that_exist(
    services: dict[str, dict[str, Any]],
) -> None:
    for name in CELERY_SERVICES:
        check_celery_command(argv(services[name]["command"]))


def test_flower_runs_behind_drumlines_gate_with_options_that_exist(
    services: dict[str, dict[str, Any]],
) -> None:
    args = argv(services["flower"]["command"])
    assert args[:2] == ["drumline", "flower"], args  # not `celery flower`: /metrics is open there
    names = [flag.lstrip("-").replace("-", "_") for flag in flags(args[2:])]
    assert names and all(name in tornado_options for name in names), args
    assert services["flower"]["ports"] == ["127.0.0.1:5555:5555"]


def test_beat_uses_the_producer_scheduler_and_workers_consume_both_queues(
    services: dict[str, dict[str, Any]],
) -> None:
    beat = argv(services["beat"]["command"])
    assert beat[beat.index("-S") + 1] == "beat.scheduler:ProducerScheduler"
    worker = argv(services["worker"]["command"])
    assert set(worker[worker.index("-Q") + 1].split(",")) == {"lifecycle", "producers"}


def test_drumline_commands_exist(services: dict[str, dict[str, Any]]) -> None:
    commands = [argv(s["command"]) for s in services.values() if "command" in s]
    drumline = [args for args in commands if args[0] == "drumline"]
    assert ["drumline", "migrate"] in drumline
    for args in drumline:
        assert all(arg in cli.commands or arg.startswith("-") for arg in args[1:]), args


def test_the_worker_healthcheck_is_drumline_health_for_this_hosts_worker(
    services: dict[str, dict[str, Any]],
) -> None:
    worker = services["worker"]
    kind, *args = worker["healthcheck"]["test"]
    assert kind == "CMD" and args[:2] == ["drumline", "health"]
    assert set(flags(args[2:])) <= options_of(cli.commands["health"])
    assert args[args.index("--role") + 1] == "worker"
    # `--role worker` counts the workers whose node name ends in @ and this host's name.
    hostname = argv(worker["command"])[-1].split("=", 1)[1]
    assert hostname.endswith("@%h"), hostname
    # Its ping and broker check fit in the healthcheck's own timeout.
    timeout = float(args[args.index("--timeout") + 1])
    assert 2 * timeout <= parse_interval(worker["healthcheck"]["timeout"]).total_seconds()


def test_workers_scale_and_stop_warmly(services: dict[str, dict[str, Any]]) -> None:
    worker = services["worker"]
    assert "container_name" not in worker and "ports" not in worker  # --scale needs neither
    grace = parse_interval(worker["stop_grace_period"])
    assert grace >= Settings.from_env({}).max_timeout  # the longest run can finish
    assert services["beat"]["deploy"]["replicas"] == 2


def test_dependencies_exist_and_wait_for_the_migration(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, service in services.items():
        for target, rule in service.get("depends_on", {}).items():
            assert target in services, f"{name} depends on unknown {target}"
            assert rule["condition"] in HEALTHY
            if rule["condition"] == "service_healthy":
                assert "healthcheck" in services[target], f"{target} has no healthcheck"
    for name in SERVICES_OF_THE_APP:
        migrate = services[name]["depends_on"]["migrate"]
        assert migrate["condition"] == "service_completed_successfully"
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["migrate"]["restart"] == "no"


def test_redis_never_evicts_persists_and_requires_a_password(
    services: dict[str, dict[str, Any]],
) -> None:
    redis = services["redis"]
    command = " ".join(argv(redis["command"]))
    for setting in ("--requirepass", "--maxmemory-policy noeviction", "--appendonly yes"):
        assert setting in command
    assert "healthcheck" in redis and "healthcheck" in services["postgres"]


def test_the_environment_is_drumline_settings_that_parse(
    services: dict[str, dict[str, Any]],
) -> None:
    source = inspect.getsource(workers.settings)
    for name in ("migrate", *SERVICES_OF_THE_APP):
        env = environment(services[name])
        for variable in (v for v in env if v.startswith("DRUMLINE_")):
            assert f'"{variable}"' in source, f"workers/settings.py does not read {variable}"
        for variable in (v for v in env if v.startswith("FLOWER_")):
            assert variable.removeprefix("FLOWER_").lower() in tornado_options
        settings = Settings.from_env(env)
        assert settings.broker_url == "redis://:<redis_password>@redis:6379/0"
        assert settings.database_url.startswith("postgresql+psycopg://drumline:<postgres_")
    assert "FLOWER_BASIC_AUTH" in services["flower"]["environment"]


def test_the_dockerfile_copies_what_pip_install_needs(
    services: dict[str, dict[str, Any]],
) -> None:
    lines = [line.strip() for line in DOCKERFILE.read_text().splitlines()]
    assert "FROM python:3.11-slim" in lines
    assert any(line.startswith("RUN pip install") for line in lines)
    install = next(i for i, line in enumerate(lines) if line.startswith("RUN pip install"))
    # Only what is copied before `pip install` is there for it to read.
    copied = {
        source.rstrip("/")
        for line in lines[:install]
        if line.startswith("COPY ")
        for source in line.split()[1:-1]
    }
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = {name.split(".")[0] for name in project["tool"]["setuptools"]["packages"]}
    assert {"pyproject.toml", project["project"]["readme"], *packages} <= copied
    modules = environment(services["worker"])["DRUMLINE_PRODUCER_MODULES"]
    assert {module.split(".")[0] for module in modules.split(",")} <= copied | packages
    for service in services.values():
        if "build" in service:
            context = (COMPOSE.parent / service["build"]["context"]).resolve()
            assert context == ROOT
            assert (context / service["build"]["dockerfile"]).resolve() == DOCKERFILE


def test_beats_are_checked_by_drumline_health_and_prometheus_loads_the_rules(
    services: dict[str, dict[str, Any]],
) -> None:
    kind, *args = services["beat"]["healthcheck"]["test"]
    assert kind == "CMD" and args[:2] == ["drumline", "health"]
    assert set(flags(args[2:])) <= options_of(cli.commands["health"])
    assert args[args.index("--role") + 1] == "beat"
    # The exporter reads the files beats and workers write, and needs credentials off loopback.
    for name in ("beat", "worker", "exporter"):
        assert "metrics:/metrics" in services[name]["volumes"], name
    exporter = services["exporter"]
    assert "DRUMLINE_EXPORTER_TOKEN" in exporter["environment"]
    prometheus = services["prometheus"]
    config_dir = prometheus["volumes"][0].split(":")[0]
    config = yaml.safe_load((COMPOSE.parent / config_dir / "prometheus.yml").read_text())
    assert config["rule_files"] == ["/etc/prometheus/drumline/rules.yml"]
    assert (COMPOSE.parent / config_dir / "rules.yml").is_file()
    (job,) = config["scrape_configs"]
    assert job["static_configs"][0]["targets"] == ["exporter:9808"]
    assert job["authorization"]["credentials_file"] == "/run/secrets/exporter_token"
    assert prometheus["ports"] == ["127.0.0.1:9090:9090"]

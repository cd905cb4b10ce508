"""A redis-py client for a `redis://`, `rediss://`, `unix://` or `sentinel://` URL.

A `sentinel://` URL lists the sentinels, `;`-separated, as Celery and kombu read it
(`sentinel://:password@host1:26379/0;sentinel://:password@host2:26379/0`). The client asks
them for the master named `DRUMLINE_REDIS_SENTINEL_MASTER` and follows it through a failover.
The password of the first URL is the master's and the sentinels' own (they require one too).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlsplit

import redis
from redis.sentinel import Sentinel

SENTINEL_SCHEME = "sentinel://"
SENTINEL_PORT = 26379


def is_sentinel(url: str) -> bool:
    return url.startswith(SENTINEL_SCHEME)


def sentinel_hosts(url: str) -> tuple[list[tuple[str, int]], str | None, int]:
    """The sentinels' addresses, the password and the database number of a sentinel URL."""
    hosts: list[tuple[str, int]] = []
    password: str | None = None
    db = 0
    for chunk in url.split(";"):
        parts = urlsplit(chunk.strip())
        if parts.scheme != "sentinel" or not parts.hostname:
            raise ValueError(f"not a sentinel://host:port URL: {chunk.split('@')[-1]!r}")
        hosts.append((parts.hostname, parts.port or SENTINEL_PORT))
        if password is None and parts.password:
            password = unquote(parts.password)
        if parts.path.strip("/"):
            db = int(parts.path.strip("/"))
    return hosts, password, db


def transport_options(url: str, master: str | None) -> dict[str, Any]:
    """What kombu's sentinel transport and Celery's sentinel backend need beside the URL."""
    if not is_sentinel(url):
        return {}
    _, password, _ = sentinel_hosts(url)
    options: dict[str, Any] = {"master_name": master}
    if password:
        options["sentinel_kwargs"] = {"password": password}
    return options


def redis_client(url: str, sentinel_master: str | None, **options: Any) -> redis.Redis:
    """A client of the Redis `url` names (through its sentinels, for a sentinel URL)."""
    if not is_sentinel(url):
        return redis.Redis.from_url(url, **options)
    hosts, password, db = sentinel_hosts(url)
    sentinel = Sentinel(
        hosts,
        sentinel_kwargs={"password": password, **_timeouts(options)},
        password=password,
        db=db,
        **options,
    )
    if sentinel_master is None:
        raise ValueError("a sentinel:// URL needs DRUMLINE_REDIS_SENTINEL_MASTER")
    client: redis.Redis = sentinel.master_for(sentinel_master)
    return client


def _timeouts(options: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in options.items() if k in ("socket_timeout", "socket_connect_timeout")}

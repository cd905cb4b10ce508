"""`drumline health`: is the database reachable, the broker, a beat ticking, a worker answering?

Each check answers pass or fail with a reason, never raises: a healthcheck must say what is
wrong, not crash. For one role (`beat`, `worker`) only this host's processes count, so each
container's healthcheck speaks for itself.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from sqlalchemy import Engine, text

from models.db import redact_url
from models.heartbeat_store import HeartbeatStore
from models.log_text import loggable


class Role(StrEnum):
    BEAT = "beat"
    WORKER = "worker"


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def check_database(engine: Engine) -> Check:
    where = engine.url.render_as_string(hide_password=True)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        return Check("database", False, f"{where} unreachable: {_reason(exc)}")
    return Check("database", True, f"{where} reachable")


def check_broker(url: str, timeout: float) -> Check:
    # One attempt: a healthcheck reports the outage, it does not wait it out.
    client = redis.Redis.from_url(
        url,
        socket_connect_timeout=timeout,
        socket_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
    )
    try:
        client.ping()
    except redis.RedisError as exc:
        return Check("broker", False, f"{redact_url(url)} unreachable: {_reason(exc)}")
    finally:
        client.close()
    return Check("broker", True, f"{redact_url(url)} answers")


def check_beats(
    engine: Engine, *, now: datetime, stale_after: timedelta, host: str | None
) -> Check:
    """A beat (on `host`, if given) ticked within `stale_after`."""
    where = f" on {host}" if host else ""
    try:
        beats = [b for b in HeartbeatStore(engine).list() if host is None or b.host == host]
    except Exception as exc:
        return Check("beat", False, f"cannot read the beat heartbeats: {_reason(exc)}")
    alive = [b for b in beats if not b.stale(now, stale_after)]
    if alive:
        newest = max(alive, key=lambda b: b.last_tick_at)
        age = (now - newest.last_tick_at).total_seconds()
        return Check(
            "beat",
            True,
            f"{len(alive)} beat(s){where} ticking; the newest tick {age:.1f}s ago"
            f" ({loggable(newest.host)}:{newest.pid})",
        )
    if not beats:
        return Check("beat", False, f"no beat{where} has ever recorded a heartbeat")
    newest = beats[0]
    age = (now - newest.last_tick_at).total_seconds()
    return Check(
        "beat",
        False,
        f"no beat{where} ticked within {stale_after.total_seconds():g}s; the last tick was "
        f"{age:.0f}s ago ({loggable(newest.host)}:{newest.pid})",
    )


Ping = Callable[[float], list[dict[str, Any]]]


def check_workers(ping: Ping, timeout: float, host: str | None) -> Check:
    """A worker (on `host`, if given) answers a ping within `timeout`."""
    where = f" on {host}" if host else ""
    try:
        replies = ping(timeout)
    except Exception as exc:
        return Check("worker", False, f"cannot ping the workers: {_reason(exc)}")
    names = [name for reply in replies for name in reply]
    if host is not None:
        names = [name for name in names if name.rpartition("@")[2] == host]
    if not names:
        return Check("worker", False, f"no worker{where} answered a ping within {timeout:g}s")
    shown = ", ".join(loggable(name) for name in sorted(names)[:5])
    return Check("worker", True, f"{len(names)} worker(s){where} answered: {shown}")


def this_host() -> str:
    return socket.gethostname()


def _reason(exc: BaseException) -> str:
    return loggable(f"{type(exc).__name__}: {getattr(exc, 'orig', None) or exc}", 300)

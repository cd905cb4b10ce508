"""drumline's settings, read from `DRUMLINE_*` environment variables in this one place.

One default is not a constant: with DRUMLINE_BROKER_URL unset (or empty), the broker is the Redis
of a `drumline up` running on the data dir, read from the file it keeps there
(`workers/local_broker.py`), else a Redis on localhost. Everything below `workers/` receives the
settings as parameters; `models` and `beat` never read the environment. A bad value stops the
process with a message naming the variable.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from models.db import DEFAULT_DATA_DIR, default_database_url
from models.errors import SettingsError
from models.plain_json import JsonBounds
from workers.local_broker import announced_broker

DEFAULT_BROKER_URL = "redis://127.0.0.1:6379/0"
# The most a producer's result or state may be configured to hold (each run row keeps one).
MAX_OUTPUT_BYTES = 16 * 1024 * 1024
DEFAULT_OUTPUT_BOUNDS = JsonBounds(max_depth=32, max_bytes=64 * 1024)


@dataclass(frozen=True)
class Settings:
    broker_url: str
    database_url: str
    lock_redis_url: str
    result_backend: str
    producer_modules: tuple[str, ...] = ()
    lease: timedelta = timedelta(minutes=5)
    default_timeout: timedelta = timedelta(minutes=1)
    lock_timeout: timedelta = timedelta(seconds=60)
    lock_wait: timedelta = timedelta(seconds=10)
    beat_batch: int = 500
    beat_max_interval: timedelta = timedelta(seconds=1)
    celery_config_module: str | None = None
    # Run history retention (None: that rule is off) and how often a prune pass is sent.
    run_max_age: timedelta | None = timedelta(days=30)
    runs_kept_per_producer: int | None = 1000
    prune_interval: timedelta = timedelta(seconds=60)
    result_bounds: JsonBounds = DEFAULT_OUTPUT_BOUNDS
    state_bounds: JsonBounds = DEFAULT_OUTPUT_BOUNDS
    test_crash_after_claim: bool = False

    @property
    def visibility_timeout(self) -> timedelta:
        """How long Redis keeps an unacknowledged message before giving it to another worker.

        Longer than the lease (and so than any run's hard time limit): a message is only
        redelivered once its run cannot still be going.
        """
        return self.lease * 2

    @property
    def max_timeout(self) -> timedelta:
        """The longest per-run time limit a producer may ask for: well inside the lease."""
        return self.lease * 0.8

    @property
    def hard_time_limit(self) -> timedelta:
        """Celery's backstop for a run: above any producer's own limit, inside the lease."""
        return self.lease * 0.9

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        data_dir = Path(env.get("DRUMLINE_DATA_DIR") or DEFAULT_DATA_DIR)
        broker = env.get("DRUMLINE_BROKER_URL") or announced_broker(data_dir) or DEFAULT_BROKER_URL
        _check_redis_url("DRUMLINE_BROKER_URL", broker)
        lock_url = env.get("DRUMLINE_REDIS_URL", broker)
        _check_redis_url("DRUMLINE_REDIS_URL", lock_url)
        # How deeply a producer's result or state may nest: at most what JSON encoders (which
        # recurse) and both databases take without trouble.
        output_depth = _whole(env, "DRUMLINE_OUTPUT_MAX_DEPTH", 32, minimum=1, maximum=256)
        settings = cls(
            broker_url=broker,
            database_url=env.get("DRUMLINE_DATABASE_URL", default_database_url(data_dir)),
            lock_redis_url=lock_url,
            result_backend=env.get("DRUMLINE_RESULT_BACKEND", broker),
            producer_modules=tuple(
                m.strip() for m in env.get("DRUMLINE_PRODUCER_MODULES", "").split(",") if m.strip()
            ),
            lease=_seconds(env, "DRUMLINE_LEASE_SECONDS", 300, minimum=2),
            default_timeout=_seconds(env, "DRUMLINE_PRODUCER_TIMEOUT_SECONDS", 60, minimum=1),
            lock_timeout=_seconds(env, "DRUMLINE_LOCK_TIMEOUT_SECONDS", 60, minimum=1),
            lock_wait=_seconds(env, "DRUMLINE_LOCK_WAIT_SECONDS", 10, minimum=0),
            beat_batch=int(_number(env, "DRUMLINE_BEAT_BATCH", 500, minimum=1)),
            beat_max_interval=_seconds(env, "DRUMLINE_BEAT_MAX_INTERVAL_SECONDS", 1, minimum=0.01),
            celery_config_module=env.get("DRUMLINE_CELERY_CONFIG_MODULE") or None,
            run_max_age=_days_or_off(env, "DRUMLINE_RUN_RETENTION_DAYS", 30, maximum=36_500),
            runs_kept_per_producer=_count_or_off(
                env, "DRUMLINE_RUN_RETENTION_PER_PRODUCER", 1000, maximum=10_000_000
            ),
            prune_interval=_seconds(
                env, "DRUMLINE_PRUNE_INTERVAL_SECONDS", 60, minimum=0.1, maximum=86_400
            ),
            result_bounds=JsonBounds(
                max_depth=output_depth,
                max_bytes=_whole(
                    env,
                    "DRUMLINE_RESULT_MAX_BYTES",
                    64 * 1024,
                    minimum=64,
                    maximum=MAX_OUTPUT_BYTES,
                ),
            ),
            state_bounds=JsonBounds(
                max_depth=output_depth,
                max_bytes=_whole(
                    env, "DRUMLINE_STATE_MAX_BYTES", 64 * 1024, minimum=64, maximum=MAX_OUTPUT_BYTES
                ),
            ),
            # Test hook only: beat kills itself between claiming and sending a batch.
            test_crash_after_claim=env.get("DRUMLINE_TEST_CRASH_AFTER_CLAIM") == "1",
        )
        if settings.default_timeout > settings.max_timeout:
            raise SettingsError(
                f"DRUMLINE_PRODUCER_TIMEOUT_SECONDS ({settings.default_timeout.total_seconds():g})"
                f" must be at most 80% of DRUMLINE_LEASE_SECONDS "
                f"({settings.lease.total_seconds():g}), so a run ends before its claim expires"
            )
        return settings


def _check_redis_url(name: str, url: str) -> None:
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise SettingsError(f"{name} must be a redis://, rediss:// or unix:// URL")


def _number(
    env: Mapping[str, str],
    name: str,
    default: float,
    *,
    minimum: float,
    maximum: float = float("inf"),
) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a number") from None
    if not value >= minimum:
        raise SettingsError(f"{name}={raw!r} must be at least {minimum:g}")
    if not value <= maximum:
        raise SettingsError(f"{name}={raw!r} must be at most {maximum:.15g}")
    return value


def _seconds(
    env: Mapping[str, str],
    name: str,
    default: float,
    *,
    minimum: float,
    maximum: float = float("inf"),
) -> timedelta:
    return timedelta(seconds=_number(env, name, default, minimum=minimum, maximum=maximum))


def _days_or_off(
    env: Mapping[str, str], name: str, default: float, *, maximum: float
) -> timedelta | None:
    """A number of days, or None for 0 (the rule is off)."""
    days = _number(env, name, default, minimum=0, maximum=maximum)
    return timedelta(days=days) if days > 0 else None


def _count_or_off(env: Mapping[str, str], name: str, default: int, *, maximum: int) -> int | None:
    """A whole number, or None for 0 (the rule is off)."""
    return _whole(env, name, default, minimum=0, maximum=maximum) or None


def _whole(env: Mapping[str, str], name: str, default: int, *, minimum: int, maximum: int) -> int:
    value = _number(env, name, default, minimum=minimum, maximum=maximum)
    if value != int(value):
        raise SettingsError(f"{name}={env.get(name)!r} must be a whole number")
    return int(value)

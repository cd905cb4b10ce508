"""drumline's settings: one table of fields, each read once from its `DRUMLINE_*` variable.

`FIELDS` is the only place a variable, its default and its bounds are written; the README's
configuration table shows the same rows (tests/test_settings.py holds them to it). A default
is written as the variable would be and read the same way, bounds included. A few defaults come
from fields read before them: with DRUMLINE_BROKER_URL unset (or empty), the broker is the Redis
of a `drumline up` running on the data dir, read from the file it keeps there
(`workers/local_broker.py`), else a Redis on localhost. Everything below `workers/` receives the
settings as parameters; `models` and `beat` never read the environment. A bad value stops the
process with a message naming the variable.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

from models.db import DEFAULT_DATA_DIR, default_database_url
from models.errors import SettingsError
from models.plain_json import JsonBounds
from workers.local_broker import announced_broker
from workers.services.redis_client import SENTINEL_SCHEME, is_sentinel, sentinel_hosts

DEFAULT_BROKER_URL = "redis://127.0.0.1:6379/0"
# The most a producer's result or state may be configured to hold (each run row keeps one).
MAX_OUTPUT_BYTES = 16 * 1024 * 1024
# The shortest bearer token `drumline web` accepts: guessing 24 characters is hopeless.
MIN_TOKEN_CHARS = 24


class TaskEvents(StrEnum):
    """Which Celery task events are sent (`DRUMLINE_TASK_EVENTS`). Flower needs ALL; drumline's
    own run history and commands need none. Each costs a Redis PUBLISH per run."""

    OFF = "off"  # none: the fastest; Flower shows no tasks
    SENT = "sent"  # beat's task-sent only: Flower lists each run as sent, never its outcome
    ALL = "all"  # also the workers' received, started, succeeded and failed: what Flower shows


@dataclass(frozen=True)
class Settings:
    """One attribute per field of `FIELDS`; built by `from_env` only."""

    data_dir: Path
    broker_url: str
    lock_redis_url: str
    result_backend: str
    sentinel_master: str | None
    database_url: str
    producer_modules: tuple[str, ...]
    lease: timedelta
    default_timeout: timedelta
    lock_timeout: timedelta
    lock_wait: timedelta
    beat_batch: int
    beat_max_interval: timedelta
    task_events: TaskEvents
    # Run history retention (None: that rule is off) and how often a prune pass is sent.
    run_max_age: timedelta | None
    runs_kept_per_producer: int | None
    prune_interval: timedelta
    # Lifecycle history entries kept per workflow (its newest ones).
    history_kept: int
    celery_config_module: str | None
    result_max_bytes: int
    state_max_bytes: int
    output_max_depth: int
    # Secrets: kept out of the repr, so a logged Settings shows neither.
    web_basic_auth: str | None = dataclass_field(repr=False)
    web_token: str | None = dataclass_field(repr=False)
    flower_url: str
    # Prometheus metrics (workers/services/run_metrics.py, beat/beat_metrics.py, the exporter).
    metrics_on: bool
    metrics_root: Path
    metrics_producer_labels: bool
    beat_stale_after: timedelta
    exporter_basic_auth: str | None = dataclass_field(repr=False)
    exporter_token: str | None = dataclass_field(repr=False)

    @property
    def metrics_dir(self) -> Path | None:
        """Where this host's processes keep their metrics files, or None with metrics off."""
        return self.metrics_root if self.metrics_on else None

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

    @property
    def result_bounds(self) -> JsonBounds:
        return JsonBounds(max_depth=self.output_max_depth, max_bytes=self.result_max_bytes)

    @property
    def state_bounds(self) -> JsonBounds:
        return JsonBounds(max_depth=self.output_max_depth, max_bytes=self.state_max_bytes)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for field in FIELDS:
            values[field.attribute] = field.read(env, values)
        settings = cls(**values)
        sentinel_urls = [
            url
            for url in (settings.broker_url, settings.lock_redis_url, settings.result_backend)
            if is_sentinel(url)
        ]
        if sentinel_urls and settings.sentinel_master is None:
            raise SettingsError(
                "DRUMLINE_REDIS_SENTINEL_MASTER must name the sentinels' master when a Redis "
                "URL is sentinel://"
            )
        if settings.default_timeout > settings.max_timeout:
            raise SettingsError(
                f"DRUMLINE_PRODUCER_TIMEOUT_SECONDS ({settings.default_timeout.total_seconds():g})"
                f" must be at most 80% of DRUMLINE_LEASE_SECONDS "
                f"({settings.lease.total_seconds():g}), so a run ends before its claim expires"
            )
        return settings


# What a field's text becomes: called with the field (for its name and bounds) and the text.
Parse = Callable[["Field", str], Any]
# A default computed from the fields read before (by attribute), as the variable would hold it.
Derived = Callable[[Mapping[str, Any]], str]


@dataclass(frozen=True)
class Field:
    """One setting: its variable, the `Settings` attribute it fills, how it is read, its default
    (as the variable would hold it, or computed from earlier fields), bounds and meaning."""

    variable: str
    attribute: str
    parse: Parse
    default: str | Derived
    meaning: str
    minimum: float = float("-inf")
    maximum: float = float("inf")
    # How the README states a computed default; a written one is shown as written ("none": "").
    shown_default: str = ""
    # Whether an empty value counts as unset (true of every number, the broker and the data
    # dir); where it does not, an empty value is read as given.
    blank_is_unset: bool = True

    def is_set(self, env: Mapping[str, str]) -> bool:
        """Whether `env` gives this setting (which an empty value may not)."""
        raw = env.get(self.variable)
        return raw is not None and (raw != "" or not self.blank_is_unset)

    def read(self, env: Mapping[str, str], earlier: Mapping[str, Any]) -> Any:
        if self.is_set(env):
            return self.parse(self, env[self.variable])
        default = self.default if isinstance(self.default, str) else self.default(earlier)
        return self.parse(self, default)

    @property
    def documented_default(self) -> str:
        if self.shown_default:
            return self.shown_default
        if not isinstance(self.default, str):
            raise TypeError(f"{self.variable}: a computed default needs its shown_default")
        return self.default or "none"


def setting(attribute: str) -> Field:
    """The field filling `Settings.<attribute>`, e.g. to ask whether its variable is set."""
    for candidate in FIELDS:
        if candidate.attribute == attribute:
            return candidate
    raise KeyError(attribute)


def _text(field: Field, raw: str) -> str:
    return raw


def _text_or_none(field: Field, raw: str) -> str | None:
    return raw or None


def _path(field: Field, raw: str) -> Path:
    return Path(raw)


def _on_off(field: Field, raw: str) -> bool:
    if raw not in ("on", "off"):
        raise SettingsError(f"{field.variable}={raw!r} must be on or off")
    return raw == "on"


def _metrics_in_data_dir(earlier: Mapping[str, Any]) -> str:
    return str(Path(earlier["data_dir"]) / "metrics")


def _redis_url(field: Field, raw: str) -> str:
    if not raw.startswith(("redis://", "rediss://", "unix://", SENTINEL_SCHEME)):
        raise SettingsError(
            f"{field.variable} must be a redis://, rediss://, unix:// or sentinel:// URL"
        )
    if is_sentinel(raw):
        try:
            sentinel_hosts(raw)
        except ValueError as error:
            raise SettingsError(f"{field.variable}: {error}") from None
    return raw


def _modules(field: Field, raw: str) -> tuple[str, ...]:
    return tuple(module.strip() for module in raw.split(",") if module.strip())


def _number(field: Field, raw: str) -> float:
    name = field.variable
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a number") from None
    if not value >= field.minimum:
        raise SettingsError(f"{name}={raw!r} must be at least {field.minimum:g}")
    if not value <= field.maximum:
        raise SettingsError(f"{name}={raw!r} must be at most {field.maximum:.15g}")
    return value


def _whole(field: Field, raw: str) -> int:
    value = _number(field, raw)
    if value != int(value):
        raise SettingsError(f"{field.variable}={raw!r} must be a whole number")
    return int(value)


def _seconds(field: Field, raw: str) -> timedelta:
    return timedelta(seconds=_number(field, raw))


def _days_or_off(field: Field, raw: str) -> timedelta | None:
    """A number of days, or None for 0 (the rule is off)."""
    days = _number(field, raw)
    return timedelta(days=days) if days > 0 else None


def _count_or_off(field: Field, raw: str) -> int | None:
    """A whole number, or None for 0 (the rule is off)."""
    return _whole(field, raw) or None


def _credentials(field: Field, raw: str) -> str | None:
    """`user:password`, neither part empty (the value is never shown in a message)."""
    if not raw:
        return None
    user, colon, password = raw.partition(":")
    if not (user and colon and password):
        raise SettingsError(f"{field.variable} must be user:password, neither part empty")
    return raw


def _token(field: Field, raw: str) -> str | None:
    if not raw:
        return None
    if len(raw) < MIN_TOKEN_CHARS or not raw.isascii() or not raw.isprintable() or " " in raw:
        raise SettingsError(
            f"{field.variable} must be at least {MIN_TOKEN_CHARS} printable ASCII characters "
            "without spaces"
        )
    return raw


def _http_url(field: Field, raw: str) -> str:
    if not raw.startswith(("http://", "https://")):
        raise SettingsError(f"{field.variable} must be an http:// or https:// URL")
    return raw.rstrip("/")


def _task_events(field: Field, raw: str) -> TaskEvents:
    try:
        return TaskEvents(raw)
    except ValueError:
        allowed = ", ".join(choice.value for choice in TaskEvents)
        raise SettingsError(f"{field.variable}={raw!r} must be one of {allowed}") from None


def _broker(earlier: Mapping[str, Any]) -> str:
    return announced_broker(earlier["data_dir"]) or DEFAULT_BROKER_URL


def _the_broker(earlier: Mapping[str, Any]) -> str:
    return str(earlier["broker_url"])


def _sqlite_in_data_dir(earlier: Mapping[str, Any]) -> str:
    return default_database_url(earlier["data_dir"])


# In reading order: a computed default reads only the fields above it.
FIELDS: tuple[Field, ...] = (
    Field(
        "DRUMLINE_DATA_DIR",
        "data_dir",
        _path,
        str(DEFAULT_DATA_DIR),
        "where the embedded SQLite file lives; the default of `drumline up --data-dir`, which "
        "also keeps Redis, secrets and logs there",
        shown_default=f"`./{DEFAULT_DATA_DIR}`",
    ),
    Field(
        "DRUMLINE_BROKER_URL",
        "broker_url",
        _redis_url,
        _broker,
        "Celery broker; `redis://:password@host:port/db`, `rediss://`, or `sentinel://` (Redis "
        "Sentinel)",
        shown_default="the Redis of a `drumline up` running on `DRUMLINE_DATA_DIR` (the URL it "
        f"keeps in `run/broker-url` there), else `{DEFAULT_BROKER_URL}`",
    ),
    Field(
        "DRUMLINE_REDIS_URL",
        "lock_redis_url",
        _redis_url,
        _the_broker,
        "Redis for the workflow locks and the dead letters",
        shown_default="the broker",
        blank_is_unset=False,
    ),
    Field(
        "DRUMLINE_RESULT_BACKEND",
        "result_backend",
        _text,
        _the_broker,
        "where lifecycle task results go (for `deploy --wait`)",
        shown_default="the broker",
        blank_is_unset=False,
    ),
    Field(
        "DRUMLINE_REDIS_SENTINEL_MASTER",
        "sentinel_master",
        _text_or_none,
        "",
        "the master's name that the sentinels of a `sentinel://` URL are asked for (needed then;"
        " e.g. `sentinel://:password@host1:26379/0;sentinel://:password@host2:26379/0`)",
    ),
    Field(
        "DRUMLINE_DATABASE_URL",
        "database_url",
        _text,
        _sqlite_in_data_dir,
        "`postgresql+psycopg://user:pass@host/db` in production",
        shown_default="SQLite in `DRUMLINE_DATA_DIR`",
        blank_is_unset=False,
    ),
    Field(
        "DRUMLINE_PRODUCER_MODULES",
        "producer_modules",
        _modules,
        "",
        "comma-separated modules the workers import to register producers",
    ),
    Field(
        "DRUMLINE_LEASE_SECONDS",
        "lease",
        _seconds,
        "300",
        "how long a beat's claim on a slot lasts before the slot is sent again (at least 2)",
        minimum=2,
    ),
    Field(
        "DRUMLINE_PRODUCER_TIMEOUT_SECONDS",
        "default_timeout",
        _seconds,
        "60",
        "default time limit of one run (at least 1, at most 80% of the lease)",
        minimum=1,
    ),
    Field(
        "DRUMLINE_LOCK_TIMEOUT_SECONDS",
        "lock_timeout",
        _seconds,
        "60",
        "workflow lock expiry (at least 1)",
        minimum=1,
    ),
    Field(
        "DRUMLINE_LOCK_WAIT_SECONDS",
        "lock_wait",
        _seconds,
        "10",
        "how long a change waits for the workflow lock",
        minimum=0,
    ),
    Field(
        "DRUMLINE_BEAT_BATCH",
        "beat_batch",
        _whole,
        # A slot costs beat the same at 500 as at 2,000 a claim (the due index leaves claimed
        # rows out), and smaller claims share a burst evenly between beats and send its
        # first slots sooner (bench/README.md, "Burst").
        "500",
        "due slots claimed and sent per beat tick (at least 1)",
        minimum=1,
    ),
    Field(
        "DRUMLINE_BEAT_MAX_INTERVAL_SECONDS",
        "beat_max_interval",
        _seconds,
        "1",
        "longest beat sleep, so a newly deployed earlier run is seen within it (at least 0.01)",
        minimum=0.01,
    ),
    Field(
        "DRUMLINE_TASK_EVENTS",
        "task_events",
        _task_events,
        TaskEvents.ALL.value,
        "Celery task events: `all` (what Flower needs), `sent` (beat's task-sent only) or `off`"
        " (fastest; drumline's own history and commands need none)",
    ),
    Field(
        "DRUMLINE_RUN_RETENTION_DAYS",
        "run_max_age",
        _days_or_off,
        "30",
        "finished runs scheduled longer ago are deleted (0: no age limit; at most 36500)",
        minimum=0,
        maximum=36_500,
    ),
    Field(
        "DRUMLINE_RUN_RETENTION_PER_PRODUCER",
        "runs_kept_per_producer",
        _count_or_off,
        "1000",
        "each producer keeps only its newest N finished runs (0: no count limit; at most "
        "10,000,000)",
        minimum=0,
        maximum=10_000_000,
    ),
    Field(
        "DRUMLINE_HISTORY_PER_WORKFLOW",
        "history_kept",
        _whole,
        "100",
        "each workflow's change history keeps its newest N entries, deleted ones' too "
        "(1 to 100,000)",
        minimum=1,
        maximum=100_000,
    ),
    Field(
        "DRUMLINE_PRUNE_INTERVAL_SECONDS",
        "prune_interval",
        _seconds,
        "60",
        "how often beat sends a prune pass (0.1 to 86400)",
        minimum=0.1,
        maximum=86_400,
    ),
    Field(
        "DRUMLINE_CELERY_CONFIG_MODULE",
        "celery_config_module",
        _text_or_none,
        "",
        "a module with extra Celery settings (e.g. a static `beat_schedule`, kept beside "
        "drumline's own entry)",
    ),
    Field(
        "DRUMLINE_RESULT_MAX_BYTES",
        "result_max_bytes",
        _whole,
        "65536",
        "the largest result a run may store, as JSON (64 to 16 MiB)",
        minimum=64,
        maximum=MAX_OUTPUT_BYTES,
    ),
    Field(
        "DRUMLINE_STATE_MAX_BYTES",
        "state_max_bytes",
        _whole,
        "65536",
        "the largest state a run may store, as JSON (64 to 16 MiB)",
        minimum=64,
        maximum=MAX_OUTPUT_BYTES,
    ),
    Field(
        "DRUMLINE_OUTPUT_MAX_DEPTH",
        "output_max_depth",
        _whole,
        "32",
        # At most what JSON encoders (which recurse) and both databases take without trouble.
        "how deeply a result or state may nest (1 to 256)",
        minimum=1,
        maximum=256,
    ),
    Field(
        "DRUMLINE_WEB_BASIC_AUTH",
        "web_basic_auth",
        _credentials,
        "",
        "`user:password` that `drumline web` asks browsers for (basic auth; `drumline up` sets "
        "Flower's)",
    ),
    Field(
        "DRUMLINE_WEB_TOKEN",
        "web_token",
        _token,
        "",
        "a bearer token for scripts calling `drumline web` (at least 24 characters)",
    ),
    Field(
        "DRUMLINE_FLOWER_URL",
        "flower_url",
        _http_url,
        "http://127.0.0.1:5555",
        "where the web view links a run's task id to (Flower's task page)",
    ),
    Field(
        "DRUMLINE_METRICS",
        "metrics_on",
        _on_off,
        "on",
        "`on`: beat and workers record Prometheus metrics for `drumline exporter`; `off`: none",
    ),
    Field(
        "DRUMLINE_METRICS_DIR",
        "metrics_root",
        _path,
        _metrics_in_data_dir,
        "where beat and workers keep their metrics files (private; one exporter per host reads it)",
        shown_default="`metrics` in `DRUMLINE_DATA_DIR`",
    ),
    Field(
        "DRUMLINE_METRICS_PRODUCER_LABELS",
        "metrics_producer_labels",
        _on_off,
        "off",
        "`on`: worker metrics carry a `producer` label besides `workflow` (one series per "
        "producer)",
    ),
    Field(
        "DRUMLINE_BEAT_STALE_SECONDS",
        "beat_stale_after",
        _seconds,
        "30",
        "a beat that has not ticked for this long is stale: `drumline beats`, `health`, the "
        "alert (1 to 86400)",
        minimum=1,
        maximum=86_400,
    ),
    Field(
        "DRUMLINE_EXPORTER_BASIC_AUTH",
        "exporter_basic_auth",
        _credentials,
        "",
        "`user:password` the exporter requires (basic auth); required, or a token, off loopback",
    ),
    Field(
        "DRUMLINE_EXPORTER_TOKEN",
        "exporter_token",
        _token,
        "",
        "a bearer token the exporter accepts (`Authorization: Bearer ...`; at least 24 characters)",
    ),
)

"""workers/settings.py: one table of fields, read once, and the README's table showing it."""

from __future__ import annotations

import dataclasses
import re
from datetime import timedelta
from pathlib import Path

import pytest
from celery.exceptions import ImproperlyConfigured

from beat.scheduler import BeatSettings
from models.errors import SettingsError
from models.plain_json import JsonBounds
from workers.settings import FIELDS, Settings, setting
from workers.tasks.celery_config import celery_config

README = Path(__file__).resolve().parents[1] / "README.md"
NOWHERE = {"DRUMLINE_DATA_DIR": "/nonexistent"}  # no `drumline up` announces a broker there


def readme_configuration_rows() -> list[tuple[str, str, str]]:
    """(variable, default, meaning) of each row of the README's configuration table."""
    section = README.read_text().split("## Configuration", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `(DRUMLINE_\w+)` \| (.*?) \| (.*) \|$", section, re.M)
    assert rows, "the README's configuration table is gone"
    return rows


def test_the_readme_table_shows_every_field_with_its_default() -> None:
    expected = [(f.variable, f.documented_default, f.meaning) for f in FIELDS]
    assert readme_configuration_rows() == expected


def test_each_field_fills_one_attribute_of_the_settings() -> None:
    attributes = [f.attribute for f in FIELDS]
    assert sorted(attributes) == sorted(f.name for f in dataclasses.fields(Settings))
    assert len({f.variable for f in FIELDS}) == len(FIELDS)


def test_the_written_defaults_are_what_an_empty_environment_reads() -> None:
    settings = Settings.from_env(NOWHERE)
    assert settings.lease == timedelta(seconds=300)
    assert settings.lock_timeout == timedelta(seconds=60)
    assert settings.lock_wait == timedelta(seconds=10)
    assert settings.beat_batch == 500
    assert settings.producer_modules == ()
    assert settings.celery_config_module is None
    assert settings.database_url == "sqlite:////nonexistent/drumline.db"


def test_computed_defaults_follow_the_fields_read_before_them() -> None:
    broker = "redis://broker.example:6379/3"
    settings = Settings.from_env({**NOWHERE, "DRUMLINE_BROKER_URL": broker})
    assert (settings.lock_redis_url, settings.result_backend) == (broker, broker)
    blank_broker = Settings.from_env({**NOWHERE, "DRUMLINE_BROKER_URL": ""})
    assert blank_broker.broker_url == "redis://127.0.0.1:6379/0"


def test_an_empty_lock_redis_url_is_read_as_given_and_refused() -> None:
    with pytest.raises(SettingsError, match=r"^DRUMLINE_REDIS_URL must be a redis://"):
        Settings.from_env({**NOWHERE, "DRUMLINE_REDIS_URL": ""})


def test_the_output_bounds_default_to_64_kib_and_32_levels() -> None:
    settings = Settings.from_env(NOWHERE)
    expected = JsonBounds(max_depth=32, max_bytes=64 * 1024)
    assert (settings.result_bounds, settings.state_bounds) == (expected, expected)


def test_each_output_bound_has_its_own_variable() -> None:
    settings = Settings.from_env(
        {
            **NOWHERE,
            "DRUMLINE_RESULT_MAX_BYTES": "1000",
            "DRUMLINE_STATE_MAX_BYTES": "2000",
            "DRUMLINE_OUTPUT_MAX_DEPTH": "5",
        }
    )
    assert settings.result_bounds == JsonBounds(max_depth=5, max_bytes=1000)
    assert settings.state_bounds == JsonBounds(max_depth=5, max_bytes=2000)


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("DRUMLINE_RUN_RETENTION_DAYS", "-1", "must be at least 0"),
        ("DRUMLINE_RUN_RETENTION_DAYS", "nan", "must be at least 0"),
        ("DRUMLINE_RUN_RETENTION_DAYS", "36501", "must be at most 36500"),
        ("DRUMLINE_RUN_RETENTION_DAYS", "a month", "is not a number"),
        ("DRUMLINE_RUN_RETENTION_PER_PRODUCER", "1.5", "must be a whole number"),
        ("DRUMLINE_RUN_RETENTION_PER_PRODUCER", "1e8", "must be at most 10000000"),
        ("DRUMLINE_PRUNE_INTERVAL_SECONDS", "0", "must be at least 0.1"),
        ("DRUMLINE_PRUNE_INTERVAL_SECONDS", "inf", "must be at most 86400"),
        ("DRUMLINE_RESULT_MAX_BYTES", "1.5e3x", "is not a number"),
        ("DRUMLINE_RESULT_MAX_BYTES", "10", "must be at least 64"),
        ("DRUMLINE_STATE_MAX_BYTES", "100.5", "must be a whole number"),
        ("DRUMLINE_STATE_MAX_BYTES", "inf", "must be at most 16777216"),
        ("DRUMLINE_OUTPUT_MAX_DEPTH", "nan", "must be at least 1"),
        ("DRUMLINE_OUTPUT_MAX_DEPTH", "1000", "must be at most 256"),
        # Refused, not truncated to 1.
        ("DRUMLINE_BEAT_BATCH", "1.5", "must be a whole number"),
        ("DRUMLINE_TASK_EVENTS", "ALL", "must be one of off, sent, all"),
        ("DRUMLINE_TASK_EVENTS", "none", "must be one of off, sent, all"),
    ],
)
def test_a_bad_value_is_refused_naming_its_variable(
    variable: str, value: str, message: str
) -> None:
    with pytest.raises(SettingsError, match=f"^{variable}='{re.escape(value)}' {message}$"):
        Settings.from_env({**NOWHERE, variable: value})


@pytest.mark.parametrize(
    ("environ", "given"),
    [
        ({}, False),
        ({"DRUMLINE_BROKER_URL": ""}, False),
        ({"DRUMLINE_BROKER_URL": "redis://h"}, True),
    ],
)
def test_whether_a_setting_is_given_counts_an_empty_broker_as_unset(
    environ: dict[str, str], given: bool
) -> None:
    assert setting("broker_url").is_set(environ) is given


def test_beat_reads_its_keys_from_the_celery_config_written_from_the_settings() -> None:
    settings = Settings.from_env({**NOWHERE, "DRUMLINE_BEAT_BATCH": "7"})
    beat = BeatSettings.from_conf(celery_config(settings))
    assert (beat.database_url, beat.lease, beat.batch) == (
        settings.database_url,
        settings.lease,
        7,
    )


@pytest.mark.parametrize(
    "key", ["drumline_database_url", "drumline_lease_seconds", "drumline_beat_batch"]
)
def test_beat_has_no_defaults_of_its_own_and_names_a_missing_key(key: str) -> None:
    conf = celery_config(Settings.from_env(NOWHERE))
    del conf[key]
    with pytest.raises(ImproperlyConfigured, match=f"^{key} is not set in the Celery config$"):
        BeatSettings.from_conf(conf)


@pytest.mark.parametrize(
    ("value", "sent", "worker"),
    [(None, True, True), ("all", True, True), ("sent", True, False), ("off", False, False)],
)
def test_task_events_turn_celerys_sent_and_worker_events_on_and_off(
    value: str | None, sent: bool, worker: bool
) -> None:
    environ = NOWHERE if value is None else {**NOWHERE, "DRUMLINE_TASK_EVENTS": value}
    conf = celery_config(Settings.from_env(environ))
    assert (conf["task_send_sent_event"], conf["worker_send_task_events"]) == (sent, worker)

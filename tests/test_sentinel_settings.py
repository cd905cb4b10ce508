"""`sentinel://` URLs: read and checked with the settings, handed to Celery, kombu and
redis-py as each expects (the failover itself: tests/hosts/test_sentinel_failover.py)."""

from __future__ import annotations

import pytest

from models.errors import SettingsError
from workers.services.redis_client import sentinel_hosts
from workers.settings import Settings
from workers.tasks.celery_config import celery_config
from workers.tasks.redis_transport import SENTINEL_TRANSPORT

URL = (
    "sentinel://:s3cret@10.0.0.1:26379/2;sentinel://:s3cret@10.0.0.2;sentinel://:s3cret@h3:26380/2"
)


def test_a_sentinel_url_lists_the_sentinels_password_and_database() -> None:
    hosts, password, db = sentinel_hosts(URL)
    assert hosts == [("10.0.0.1", 26379), ("10.0.0.2", 26379), ("h3", 26380)]
    assert (password, db) == ("s3cret", 2)


def test_celery_gets_the_sentinel_transport_and_the_master_for_broker_and_backend() -> None:
    settings = Settings.from_env(
        {"DRUMLINE_BROKER_URL": URL, "DRUMLINE_REDIS_SENTINEL_MASTER": "drumline"}
    )
    assert settings.lock_redis_url == settings.result_backend == URL
    config = celery_config(settings)
    assert config["broker_transport"] == SENTINEL_TRANSPORT
    for key in ("broker_transport_options", "result_backend_transport_options"):
        assert config[key]["master_name"] == "drumline"
        assert config[key]["sentinel_kwargs"] == {"password": "s3cret"}
        assert config[key]["visibility_timeout"] == 600
    assert config["drumline_redis_sentinel_master"] == "drumline"


def test_a_sentinel_url_without_a_master_name_is_refused() -> None:
    with pytest.raises(SettingsError, match="DRUMLINE_REDIS_SENTINEL_MASTER must name"):
        Settings.from_env({"DRUMLINE_REDIS_URL": URL, "DRUMLINE_BROKER_URL": "redis://h:1/0"})


def test_a_malformed_sentinel_url_is_refused_naming_the_variable() -> None:
    with pytest.raises(SettingsError, match=r"DRUMLINE_BROKER_URL: not a sentinel://host:port"):
        Settings.from_env(
            {
                "DRUMLINE_BROKER_URL": "sentinel://:pw@h1:26379/0;redis://h2:6379",
                "DRUMLINE_REDIS_SENTINEL_MASTER": "m",
            }
        )

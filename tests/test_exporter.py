"""`drumline exporter`: loopback by default, credentials required off it and honoured on it,
and a scrape that still answers when the database does not."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest

from tests.monitoring import basic, drumline, fetch, running_exporter, scrape, total

SQLITE_ONLY = pytest.mark.parametrize("empty_db_url", ["sqlite"], indirect=True)
TOKEN = "s3cret-token-for-the-exporter-test"  # at least 24 characters
BASIC = "prom:pa55word"


@SQLITE_ONLY
def test_off_loopback_without_credentials_it_refuses_to_start(
    drumline_env: Mapping[str, str],
) -> None:
    done = drumline(drumline_env, "exporter", "--address", "0.0.0.0", "--port", "1")
    assert done.returncode == 1
    assert "would answer anyone" in done.stderr
    assert "DRUMLINE_EXPORTER_BASIC_AUTH" in done.stderr


@SQLITE_ONLY
def test_with_credentials_every_request_must_carry_them(
    drumline_env: Mapping[str, str], tmp_path: Path
) -> None:
    env = {
        **drumline_env,
        "DRUMLINE_EXPORTER_TOKEN": TOKEN,
        "DRUMLINE_EXPORTER_BASIC_AUTH": BASIC,
    }
    with running_exporter(env, tmp_path) as url:
        for refused in (None, "Bearer wrong", basic("prom:wrong"), f"Basic {TOKEN}"):
            status, body = fetch(url, refused)
            assert status == 401, refused
            assert "drumline_" not in body
        assert fetch(url.replace("/metrics", "/anything"), None)[0] == 401
        assert total(scrape(url, f"Bearer {TOKEN}"), "drumline_exporter_database_up") == 1
        assert total(scrape(url, basic(BASIC)), "drumline_exporter_database_up") == 1
    log = (tmp_path / "exporter.log").read_text()
    assert TOKEN not in log and "pa55word" not in log


@SQLITE_ONLY
def test_a_database_outage_is_a_metric_not_a_failed_scrape(
    drumline_env: Mapping[str, str], tmp_path: Path
) -> None:
    env = {
        **drumline_env,
        "DRUMLINE_DATABASE_URL": "postgresql+psycopg://nobody:pw@127.0.0.1:1/none",
    }
    with running_exporter(env, tmp_path) as url:
        samples = scrape(url)
    assert total(samples, "drumline_exporter_database_up") == 0
    assert not any(name.startswith("drumline_producer_") for name, _ in samples)

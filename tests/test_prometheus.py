"""The shipped alert rules in a real Prometheus (Debian's `prometheus` package): promtool accepts
them, Prometheus scrapes `drumline exporter` with a bearer token, and DrumlineNoBeatAlive goes
from inactive to firing when the beat stops."""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.parse
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.e2e import wait_until
from tests.monitoring import fetch, running_exporter
from tests.processes import CeleryProcess, running_beat
from workers.local.redis_server import free_port

ROOT = Path(__file__).resolve().parents[1]
RULES = ROOT / "compose" / "prometheus" / "rules.yml"
TOKEN = "prometheus-scrapes-with-this"
needs_prometheus = pytest.mark.skipif(
    shutil.which("prometheus") is None or shutil.which("promtool") is None,
    reason="needs Debian's prometheus package (prometheus, promtool); .ci/run installs it",
)


@needs_prometheus
def test_promtool_accepts_the_rules() -> None:
    done = subprocess.run(
        ["promtool", "check", "rules", str(RULES)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 8 rules found" in done.stdout


@contextmanager
def running_prometheus(target: str, tmp_path: Path) -> Iterator[str]:
    """Prometheus scraping `target` and evaluating the rules every second; yields its API URL."""
    (tmp_path / "token").write_text(TOKEN)
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES)],
        "scrape_configs": [
            {
                "job_name": "drumline",
                "authorization": {"credentials_file": str(tmp_path / "token")},
                "static_configs": [{"targets": [target]}],
            }
        ],
    }
    (tmp_path / "prometheus.yml").write_text(json.dumps(config))  # JSON is YAML
    port = free_port()
    argv = [
        "prometheus",
        f"--config.file={tmp_path / 'prometheus.yml'}",
        f"--storage.tsdb.path={tmp_path / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    server = CeleryProcess(argv, {}, tmp_path / "prometheus.log")
    server.start()
    try:
        server.wait_for_log("Server is ready to receive web requests.")
        yield f"http://127.0.0.1:{port}/api/v1"
    finally:
        server.stop()


def api(url: str, path: str, **params: str) -> Any:
    status, body = fetch(f"{url}/{path}?{urllib.parse.urlencode(params)}")
    assert status == 200, body
    return json.loads(body)["data"]


def alert_state(url: str, name: str) -> str:
    """The state of the rule `name`: inactive, pending or firing."""
    for group in api(url, "rules")["groups"]:
        for rule in group["rules"]:
            if rule["name"] == name:
                return str(rule["state"])
    raise AssertionError(f"no rule {name} loaded")


def scraped(url: str, query: str) -> bool:
    return bool(api(url, "query", query=query)["result"])


@needs_prometheus
@pytest.mark.parametrize("empty_db_url", ["sqlite"], indirect=True)
def test_prometheus_scrapes_the_exporter_and_fires_no_beat_alive_when_the_beat_stops(
    drumline_env: Mapping[str, str], tmp_path: Path
) -> None:
    env = {**drumline_env, "DRUMLINE_BEAT_STALE_SECONDS": "2", "DRUMLINE_EXPORTER_TOKEN": TOKEN}
    with running_exporter(env, tmp_path) as metrics_url:
        target = urllib.parse.urlsplit(metrics_url).netloc
        with running_prometheus(target, tmp_path) as url:
            assert alert_state(url, "DrumlineNoBeatAlive") in ("inactive", "pending", "firing")
            with running_beat(env, tmp_path):
                wait_until(lambda: scraped(url, 'up{job="drumline"} == 1'), 30, "a scrape")
                wait_until(
                    lambda: scraped(url, "drumline_beat_last_tick_timestamp_seconds"),
                    30,
                    "the beat's heartbeat in Prometheus",
                )
                wait_until(
                    lambda: alert_state(url, "DrumlineNoBeatAlive") == "inactive",
                    30,
                    "the alert to be inactive while the beat ticks",
                )
                assert alert_state(url, "DrumlineExporterDown") == "inactive"
            wait_until(
                lambda: alert_state(url, "DrumlineNoBeatAlive") == "firing",
                60,
                "DrumlineNoBeatAlive to fire",
            )
            (alert,) = [
                a
                for a in api(url, "alerts")["alerts"]
                if a["labels"]["alertname"] == "DrumlineNoBeatAlive"
            ]
            assert alert["state"] == "firing" and alert["labels"]["severity"] == "critical"

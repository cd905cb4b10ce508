"""Helpers for the monitoring tests: a real `drumline exporter` process and its scrape."""

from __future__ import annotations

import base64
import os
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.processes import CeleryProcess
from workers.local.celery_argv import DRUMLINE, exporter_argv
from workers.local.redis_server import free_port, port_in_use

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@contextmanager
def running_exporter(env: Mapping[str, str], log_dir: Path) -> Iterator[str]:
    """`drumline exporter` on a free loopback port, as `drumline up` starts it; yields its
    metrics URL."""
    port = free_port()
    exporter = CeleryProcess(exporter_argv(port), env, log_dir / "exporter.log")
    exporter.start()
    try:
        exporter.wait_until(lambda: port_in_use(port), 30)
        yield f"http://127.0.0.1:{port}/metrics"
    finally:
        exporter.stop()


def fetch(url: str, authorization: str | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url)
    if authorization is not None:
        request.add_header("Authorization", authorization)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def basic(credentials: str) -> str:
    return "Basic " + base64.b64encode(credentials.encode()).decode()


def scrape(url: str, authorization: str | None = None) -> Samples:
    """Every sample of a scrape, by (name, labels)."""
    status, body = fetch(url, authorization)
    assert status == 200, body
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(body)
        for sample in family.samples
    }


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of `name`'s samples whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


def drumline(env: Mapping[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """A `drumline` command, as a user runs it."""
    return subprocess.run(
        [*DRUMLINE, *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

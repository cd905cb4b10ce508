"""`drumline exporter`: one HTTP endpoint per host serving every drumline metric.

It merges the metrics files of this host's beats and worker pool processes (see
`beat/metrics_files.py`) and reads the database at each scrape (`schedule_collector.py`), so
workers serve nothing and the database is read by one process. Loopback by default; bound to
any other address it refuses to start without basic credentials or a bearer token, and with
either configured every request must carry one.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy import Engine

from beat.metrics_files import metric_files
from workers.services.http_auth import authorized, bearer_authorized
from workers.services.schedule_collector import ScheduleCollector

logger = logging.getLogger("drumline.exporter")
LOOPBACK = "127.0.0.1"
DEFAULT_PORT = 9808
REALM = 'Basic realm="drumline exporter"'

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class ExporterConfigError(ValueError):
    """The exporter would answer anyone off loopback."""


@dataclass(frozen=True)
class Credentials:
    basic: str | None
    token: str | None

    @property
    def required(self) -> bool:
        return self.basic is not None or self.token is not None

    def accept(self, header: str) -> bool:
        if self.basic is not None and authorized(header, [self.basic.encode()]):
            return True
        return self.token is not None and bearer_authorized(header, self.token.encode())


class FilesCollector(Collector):
    """The counters and histograms of every process that wrote under the metrics directory,
    summed across processes (a pool process replaced keeps its counts in the sum)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def collect(self) -> Iterator[Metric]:
        files = [str(path) for path in metric_files(self.directory)]
        return iter(MultiProcessCollector.merge(files, accumulate=True))


class DatabaseCollector(Collector):
    """The schedule collector, answering `drumline_exporter_database_up 0` rather than
    failing the whole scrape when the database cannot be read."""

    def __init__(self, inner: ScheduleCollector) -> None:
        self.inner = inner

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "drumline_exporter_database_up", "1 if the exporter read the database at this scrape"
        )
        try:
            metrics = list(self.inner.collect())
        except Exception as exc:
            logger.error("exporter: cannot read the database: %s: %s", type(exc).__name__, exc)
            up.add_metric([], 0.0)
            yield up
            return
        yield from metrics
        up.add_metric([], 1.0)
        yield up


def registry_for(
    metrics_dir: Path | None,
    engine: Engine,
    *,
    stale_after: timedelta,
    clock: Callable[[], datetime],
) -> CollectorRegistry:
    registry = CollectorRegistry()
    if metrics_dir is not None:
        registry.register(FilesCollector(metrics_dir))
    registry.register(
        DatabaseCollector(ScheduleCollector(engine, stale_after=stale_after, clock=clock))
    )
    return registry


def gated(app: WsgiApp, credentials: Credentials) -> WsgiApp:
    """`app` behind the credentials (when any are configured), on every path."""

    def guarded(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if credentials.required and not credentials.accept(environ.get("HTTP_AUTHORIZATION", "")):
            start_response(
                "401 Unauthorized",
                [("WWW-Authenticate", REALM), ("Content-Type", "text/plain")],
            )
            return [b"credentials required\n"]
        return app(environ, start_response)

    return guarded


def check_address(address: str, credentials: Credentials) -> None:
    """Refuse an address other than loopback unless credentials are configured."""
    if _is_loopback(address) or credentials.required:
        return
    raise ExporterConfigError(
        f"the exporter on {address} would answer anyone: set DRUMLINE_EXPORTER_BASIC_AUTH="
        "user:password or DRUMLINE_EXPORTER_TOKEN, or bind it to 127.0.0.1"
    )


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return address == "localhost"


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    """No access log per scrape."""

    def log_message(self, format: str, *args: Any) -> None:
        pass


def serve(registry: CollectorRegistry, address: str, port: int, credentials: Credentials) -> None:
    """Serve `registry` on `address:port` until interrupted."""
    check_address(address, credentials)
    app = gated(make_wsgi_app(registry), credentials)
    with make_server(address, port, app, _ThreadingServer, _QuietHandler) as server:
        logger.warning("exporter: serving metrics on http://%s:%d/metrics", address, port)
        server.serve_forever()

"""Serve the web application with uvicorn: one process, bounded connections and headers, no
access log (paths carry user text; actions log their own escaped lines)."""

from __future__ import annotations

from starlette.types import ASGIApp
from uvicorn import Config, Server

LOOPBACK = "127.0.0.1"
DEFAULT_PORT = 8050
# A page's reads and an action's wait run in threads: beyond this many requests at once,
# uvicorn answers 503 rather than queueing without bound.
MAX_CONCURRENT = 64
MAX_HEADER_BYTES = 16 * 1024


def serve(app: ASGIApp, host: str = LOOPBACK, port: int = DEFAULT_PORT) -> None:
    """Serve until SIGINT or SIGTERM; logs `Uvicorn running on ...` once listening."""
    config = Config(
        app,
        host=host,
        port=port,
        log_level="info",
        access_log=False,
        server_header=False,
        proxy_headers=False,
        limit_concurrency=MAX_CONCURRENT,
        timeout_keep_alive=5,
        h11_max_incomplete_event_size=MAX_HEADER_BYTES,
        lifespan="off",
    )
    Server(config).run()

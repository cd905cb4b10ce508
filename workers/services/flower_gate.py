"""Flower behind drumline's own authentication: every request, whatever its path or method.

Flower 2.x checks basic auth in most of its handlers, not all: `/metrics` (task names and worker
host names, for Prometheus), `/healthcheck`, `/static/...`, `/favicon.ico`, `/login`, `/logout`,
its 404 page and OPTIONS on every path answer without credentials, and no Flower option closes
them (FLOWER_UNAUTHENTICATED_API even opens the API). So drumline runs Flower's application with
one change: its router. Tornado asks `find_handler` which handler serves a request before any
handler runs; here a request without valid credentials is given a handler that only answers 401.
That is the smallest gate that cannot miss a path: no handler is wrapped one by one, a route that
a later Flower adds is behind it too, and unlike an authenticating reverse proxy it needs no
second server, no extra hop and no private socket between the two.
"""

from __future__ import annotations

import atexit
import signal
from collections.abc import Sequence
from contextlib import suppress
from typing import Any

import tornado.web
from celery import Celery
from flower import command, urls
from flower.app import Flower
from tornado.options import options

from workers.services.http_auth import authorized

REALM = 'Basic realm="drumline flower"'
LOOPBACK = "127.0.0.1"


class CredentialsMissingError(ValueError):
    """Flower would start without credentials."""


class Unauthorized(tornado.web.RequestHandler):
    """The answer to any request without valid credentials: 401, naming nothing."""

    def prepare(self) -> None:
        self.set_status(401)
        self.set_header("WWW-Authenticate", REALM)
        self.set_header("Content-Type", "text/plain")
        self.finish("credentials required\n")

    def check_xsrf_cookie(self) -> None:
        """Tornado checks the XSRF cookie of a POST before `prepare`: answer 401 all the same."""


class GatedFlower(Flower):  # type: ignore[misc]
    """Flower's application, routing a request to Flower only with valid basic credentials."""

    def __init__(self, credentials: Sequence[str], **kwargs: Any) -> None:
        self._credentials = [credential.encode() for credential in credentials]
        super().__init__(**kwargs)

    def find_handler(self, request: Any, **kwargs: Any) -> Any:
        if authorized(request.headers.get("Authorization", ""), self._credentials):
            return super().find_handler(request, **kwargs)
        return self.get_handler_delegate(request, Unauthorized)


def serve(capp: Celery, flower_options: Sequence[str]) -> None:
    """Run Flower for `capp` as `celery flower` does, behind the gate, until SIGTERM.

    Options are Flower's own (`--port=5555`, FLOWER_* variables); the address is loopback
    unless one is given, and basic auth credentials are required.
    """
    command.apply_env_options()
    command.apply_options("drumline flower", list(flower_options))
    command.extract_settings()
    command.setup_logging()
    credentials = list(options.basic_auth or ())
    if not credentials:
        raise CredentialsMissingError(
            "Flower needs credentials: set FLOWER_BASIC_AUTH=user:password (not on the command "
            "line, where `ps` would show them)"
        )
    options.address = options.address or LOOPBACK
    app = GatedFlower(credentials, capp=capp, options=options, **urls.settings)
    atexit.register(app.stop)
    signal.signal(signal.SIGTERM, command.sigterm_handler)
    port = app.start_http_server()
    command.print_banner(capp, "ssl_options" in urls.settings, port)
    with suppress(KeyboardInterrupt, SystemExit):
        app.start()

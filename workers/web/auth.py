"""Who may use `drumline web`, and what every response carries.

One ASGI middleware in front of the whole application, so no route, static file or 404 answers
without credentials: basic auth (the `user:password` of DRUMLINE_WEB_BASIC_AUTH, which
`drumline up` sets to Flower's) for browsers, or `Authorization: Bearer <DRUMLINE_WEB_TOKEN>`
for scripts. It also bounds request bodies and adds the security headers to every response.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass

from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from models.log_text import loggable
from workers.services.http_auth import authorized, bearer_authorized

REALM = 'Basic realm="drumline web"'
# A pasted definition is at most 1 MiB; with form encoding it may grow up to three times.
MAX_BODY_BYTES = 4 * 1024 * 1024
# Where the principal is kept in the request's scope: "basic" (a browser) or "token".
PRINCIPAL = "drumline.principal"
BASIC, TOKEN = "basic", "token"
# Who the history names for a change made through the web: `web:<user>` or `web:token`.
ACTOR = "drumline.actor"
MAX_USER_CHARS = 64

SECURITY_HEADERS = {
    # Scripts, styles and requests from this origin only: htmx and the stylesheet are served
    # here, nothing inline, no CDN.
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    # Not no-referrer: with it, a browser sends `Origin: null` on a same-site form POST.
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Cache-Control": "no-store",
}


@dataclass(frozen=True)
class Credentials:
    """What `drumline web` accepts; at least one of the two is set."""

    basic: Sequence[bytes]  # `user:password`
    token: str | None

    def principal(self, header: str) -> str | None:
        """BASIC or TOKEN for a valid Authorization header, else None."""
        if self.basic and authorized(header, self.basic):
            return BASIC
        if self.token is not None and bearer_authorized(header, self.token.encode()):
            return TOKEN
        return None


class BodyTooLargeError(Exception):
    """A request body went past MAX_BODY_BYTES while it was read."""


class Guard:
    """Authenticate every request, bound its body, and secure every response."""

    def __init__(self, app: ASGIApp, credentials: Credentials) -> None:
        self.app = app
        self.credentials = credentials

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        send = _secured(send)
        headers = Headers(scope=scope)
        principal = self.credentials.principal(headers.get("authorization", ""))
        if principal is None:
            challenge = {"WWW-Authenticate": REALM} if self.credentials.basic else {}
            refusal = PlainTextResponse("credentials required\n", 401, headers=challenge)
            await refusal(scope, receive, send)
            return
        length = headers.get("content-length", "0")
        if not length.isdigit() or int(length) > MAX_BODY_BYTES:
            await PlainTextResponse(f"body over {MAX_BODY_BYTES} bytes\n", 413)(
                scope, receive, send
            )
            return
        state = scope.setdefault("state", {})
        state[PRINCIPAL] = principal
        state[ACTOR] = web_actor(principal, headers.get("authorization", ""))
        try:
            await self.app(scope, _bounded(receive), send)
        except BodyTooLargeError:
            await PlainTextResponse(f"body over {MAX_BODY_BYTES} bytes\n", 413)(
                scope, receive, send
            )


def web_actor(principal: str, header: str) -> str:
    """`web:<user>` of checked basic credentials (escaped and bounded, since the history and
    the logs show it), or `web:token` for a script's bearer token."""
    if principal == TOKEN:
        return "web:token"
    pair = base64.b64decode(header.partition(" ")[2].strip(), validate=True)
    return "web:" + loggable(pair.partition(b":")[0].decode("utf-8", "replace"), MAX_USER_CHARS)


def _secured(send: Send) -> Send:
    async def send_secured(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = MutableHeaders(scope=message)
            for name, value in SECURITY_HEADERS.items():
                headers[name] = value
        await send(message)

    return send_secured


def _bounded(receive: Receive) -> Receive:
    """`receive`, refusing a chunked body that grows past the limit."""
    seen = 0

    async def receive_bounded() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > MAX_BODY_BYTES:
                raise BodyTooLargeError
        return message

    return receive_bounded

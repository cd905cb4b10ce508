"""CSRF protection for every POST: a browser sends basic credentials to any page that asks,
so a form on another site could act with them. A browser's POST must carry this process's
token (a hidden `csrf` field, or the `X-CSRF-Token` header) and, if it names an Origin, come
from this one. A script's bearer token is never sent by a browser on its own: no check."""

from __future__ import annotations

import hmac
import secrets
from urllib.parse import urlsplit

from starlette.datastructures import FormData
from starlette.requests import Request

from workers.web.auth import BASIC, PRINCIPAL

FIELD = "csrf"
HEADER = "x-csrf-token"


class CsrfError(Exception):
    """A POST from a browser without this process's token, or from another origin."""


class CsrfTokens:
    """One random token per process: pages embed it, POSTs must return it."""

    def __init__(self) -> None:
        self.token = secrets.token_urlsafe(32)

    def check(self, request: Request, form: FormData | None = None) -> None:
        if request.scope["state"].get(PRINCIPAL) != BASIC:
            return
        origin = request.headers.get("origin")
        if origin is not None and urlsplit(origin).netloc != request.headers.get("host"):
            raise CsrfError("this action came from another site")
        given = request.headers.get(HEADER)
        if given is None and form is not None:
            field = form.get(FIELD)
            given = field if isinstance(field, str) else None
        if given is None or not hmac.compare_digest(given.encode(), self.token.encode()):
            raise CsrfError("this form has expired or did not come from drumline web: reload")

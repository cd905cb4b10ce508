"""The `drumline web` application: pages, `/api/...` and the static files (htmx, the
stylesheet), all behind the guard (`auth.py`)."""

from __future__ import annotations

from collections.abc import Collection

from celery import Celery
from sqlalchemy import Engine
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp

from workers.settings import Settings
from workers.web.api import Api
from workers.web.auth import Credentials, Guard
from workers.web.context import HERE, WebContext
from workers.web.csrf import CsrfTokens
from workers.web.pages import Pages


class NoCredentialsError(ValueError):
    """`drumline web` would answer anyone."""


def credentials_of(settings: Settings) -> Credentials:
    """What the guard accepts; refused when nothing is set, since it would answer anyone."""
    if settings.web_basic_auth is None and settings.web_token is None:
        raise NoCredentialsError(
            "drumline web needs credentials: set DRUMLINE_WEB_BASIC_AUTH=user:password "
            "(browsers) and/or DRUMLINE_WEB_TOKEN (scripts); `drumline up` sets them"
        )
    basic = [settings.web_basic_auth.encode()] if settings.web_basic_auth else []
    return Credentials(basic, settings.web_token)


def create_app(
    engine: Engine,
    celery: Celery,
    settings: Settings,
    known_producers: Collection[str],
    credentials: Credentials,
) -> ASGIApp:
    web = WebContext(engine, celery, settings, frozenset(known_producers), CsrfTokens())
    routes = [
        *Pages(web).routes(),
        *Api(web).routes(),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    return Guard(Starlette(routes=routes), credentials)

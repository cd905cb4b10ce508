"""What every page and endpoint of `drumline web` shares: the database, the Celery app, the
settings, the `Drumline` client acting for each request's user, the CSRF token and the
templates (autoescaped: names, params and errors come from users)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import jinja2
from celery import Celery
from sqlalchemy import Engine
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from models.change_store import MAX_NOTE_CHARS
from models.log_text import last_line
from models.types import utc_now
from workers.client import Drumline
from workers.read_views import json_default
from workers.settings import Settings
from workers.web.auth import ACTOR
from workers.web.csrf import CsrfTokens

HERE = Path(__file__).parent
HTMX = "htmx-2.0.11.min.js"


@dataclass
class WebContext:
    engine: Engine
    celery: Celery
    settings: Settings
    known_producers: frozenset[str]
    csrf: CsrfTokens
    now: Callable[[], datetime] = utc_now

    def __post_init__(self) -> None:
        self.templates = jinja2.Environment(
            loader=jinja2.FileSystemLoader(HERE / "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
        )
        self.templates.globals["max_note_chars"] = MAX_NOTE_CHARS
        self.templates.filters["ago"] = self.ago
        self.templates.filters["last_line"] = last_line
        self.templates.filters["json"] = lambda value: json.dumps(
            value, indent=2, default=json_default
        )

    def client(self, request: Request) -> Drumline:
        """The client acting for this request's user (`web:<user>`): the history names them."""
        actor: str = request.scope["state"][ACTOR]
        return Drumline(self.settings, app=self.celery, engine=self.engine, actor=actor)

    def render(self, request: Request, name: str, status: int = 200, **values: Any) -> Response:
        """A page, or only its live part for htmx's polling (a template `_<name>` beside it)."""
        if request.headers.get("hx-request") and (HERE / "templates" / f"_{name}").is_file():
            name = f"_{name}"
        html = self.templates.get_template(name).render(
            csrf=self.csrf.token,
            flower_url=self.settings.flower_url,
            htmx=HTMX,
            now=self.now(),
            **values,
        )
        return HTMLResponse(html, status)

    def ago(self, moment: datetime | None, never: str = "-") -> str:
        """An instant relative to now, for people: `in 4s`, `2m ago`."""
        if moment is None:
            return never
        seconds = (moment - self.now()).total_seconds()
        size = abs(seconds)
        for unit, length in (("d", 86400), ("h", 3600), ("m", 60)):
            if size >= length:
                amount = f"{size / length:.0f}{unit}"
                break
        else:
            amount = f"{size:.0f}s"
        return f"in {amount}" if seconds > 0 else f"{amount} ago"


def json_response(data: Any, status: int = 200) -> Response:
    """JSON as the CLI's --json prints it (instants as ISO-8601)."""
    return Response(json.dumps(data, default=json_default), status, media_type="application/json")

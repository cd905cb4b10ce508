"""A real `drumline web` process for tests, and a small HTTP client for it."""

from __future__ import annotations

import base64
import json
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from typing import Any

from tests.processes import CeleryProcess
from workers.local.celery_argv import web_argv
from workers.local.redis_server import free_port

USER, PASSWORD = "operator", "web-test-password"
TOKEN = "test-bearer-token-0123456789abcdef"
CREDENTIALS = {
    "DRUMLINE_WEB_BASIC_AUTH": f"{USER}:{PASSWORD}",
    "DRUMLINE_WEB_TOKEN": TOKEN,
    "DRUMLINE_FLOWER_URL": "http://127.0.0.1:5555",
}
BASIC = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
BEARER = f"Bearer {TOKEN}"


@dataclass
class Answer:
    status: int
    headers: Message
    body: str

    def json(self) -> Any:
        return json.loads(self.body)

    def csrf(self) -> str:
        match = re.search(r'name="csrf" value="([^"]+)"', self.body)
        assert match, f"no CSRF field in:\n{self.body[:2000]}"
        return match.group(1)


@dataclass
class WebServer:
    process: CeleryProcess
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def request(
        self,
        path: str,
        *,
        method: str = "GET",
        auth: str | None = BASIC,
        form: Mapping[str, str] | None = None,
        body: Any = None,
        body_bytes: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Answer:
        """One request, whatever its status."""
        data: bytes | None = None
        request = urllib.request.Request(self.url + path, method=method)
        if form is not None:
            data = urllib.parse.urlencode(form).encode()
            request.add_header("Content-Type", "application/x-www-form-urlencoded")
        elif body is not None:
            data = json.dumps(body).encode()
            request.add_header("Content-Type", "application/json")
        elif body_bytes is not None:
            data = body_bytes
        elif method == "POST":
            data = b""
        request.data = data
        if auth is not None:
            request.add_header("Authorization", auth)
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return Answer(response.status, response.headers, response.read().decode())
        except urllib.error.HTTPError as error:
            return Answer(error.code, error.headers, error.read().decode())


@contextmanager
def running_web(env: Mapping[str, str], log_dir: Path) -> Iterator[WebServer]:
    """`drumline web` on a free loopback port, with the test credentials, until the end."""
    port = free_port()
    web = CeleryProcess(web_argv(port), {**env, **CREDENTIALS}, log_dir / "web.log")
    web.start()
    try:
        web.wait_for_log("Uvicorn running on")
        yield WebServer(web, port)
    finally:
        web.stop()

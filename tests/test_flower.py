"""Flower next to drumline (`drumline flower`): every producer run shows up, readable, and no
path answers without credentials."""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import flower.urls
import pytest
import tornado.web
from sqlalchemy import Engine
from tornado.routing import PathMatches

from tests.e2e import deploy, journal_producer, runs_of, wait_until
from tests.processes import running_beat, running_worker
from workers.local.redis_server import free_port
from workers.services.http_auth import authorized

USER, PASSWORD = "user", "secret"
METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS")


@dataclass
class Answer:
    status: int
    headers: str
    body: bytes


def fetch(port: int, path: str, credentials: str | None, method: str = "GET") -> Answer:
    """One HTTP request to Flower, whatever its status."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        method=method,
        data=b"" if method in ("POST", "PUT", "PATCH") else None,
    )
    if credentials is not None:
        token = base64.b64encode(credentials.encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return Answer(int(response.status), str(response.headers), response.read())
    except urllib.error.HTTPError as error:
        return Answer(error.code, str(error.headers), error.read())


def get(port: int, path: str, credentials: str | None) -> tuple[int, Any]:
    """GET from Flower; returns the status and the decoded JSON body (None if not JSON)."""
    answer = fetch(port, path, credentials)
    if answer.status >= 400:
        return answer.status, None
    try:
        return answer.status, json.loads(answer.body)
    except ValueError:
        return answer.status, None


@contextmanager
def running_flower(
    env: Mapping[str, str], log_dir: Path, port: int, basic_auth: str
) -> Iterator[subprocess.Popen[bytes]]:
    """`drumline flower` on 127.0.0.1:`port`, as `drumline up` starts it, stopped with SIGTERM.

    Flower exits 0 on SIGTERM; the caller may check `returncode` after the block.
    """
    log_path = log_dir / "flower.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "workers.cli.main", "flower", f"--port={port}"],
            env={**os.environ, **env, "FLOWER_BASIC_AUTH": basic_auth},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def banner() -> bool:
        assert process.poll() is None, log_path.read_text(errors="replace")[-3000:]
        return "Visit me at http://127.0.0.1:" in log_path.read_text(errors="replace")

    try:
        wait_until(banner, 60, "Flower's banner")
        yield process
    finally:
        if process.poll() is None:
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def answers(port: int) -> bool:
    try:
        return get(port, "/api/tasks", f"{USER}:{PASSWORD}")[0] == 200
    except OSError:
        return False


@pytest.mark.parametrize("empty_db_url", ["sqlite"], indirect=True)
def test_flower_shows_every_producer_run_by_slot_behind_basic_auth(
    env: dict[str, str], engine: Engine, tmp_path: Path
) -> None:
    port = free_port()
    journal = tmp_path / "journal.jsonl"
    definition = {
        "name": "watched",
        "producers": {"tick": journal_producer(journal, interval="1s")},
    }
    prefix = "watched.tick@"
    with (
        running_flower(env, tmp_path, port, f"{USER}:{PASSWORD}") as flower_process,
        running_worker(env, tmp_path),
        running_beat(env, tmp_path),
    ):
        wait_until(lambda: answers(port), 15, "Flower's API to answer")
        deploy(env, definition)

        def runs() -> dict[str, dict[str, Any]]:
            status, tasks = get(port, "/api/tasks?limit=1000", f"{USER}:{PASSWORD}")
            assert status == 200
            return {
                task_id: task
                for task_id, task in tasks.items()
                if task.get("name") == "drumline.run_producer"
            }

        wait_until(
            lambda: sum(task["state"] == "SUCCESS" for task in runs().values()) >= 3,
            20,
            "three successful drumline.run_producer tasks in Flower",
        )

        # Every run of the workflow in the database shows up in Flower. Flower learns of a run
        # from the worker's events, a little after the run is written: compare the runs that had
        # finished before each fetch from Flower, until Flower has caught up with them.
        seen: dict[str, Any] = {}

        def flower_lists_every_finished_run() -> bool:
            seen["finished"] = {
                run.task_id for run in runs_of(engine, "watched") if run.status != "running"
            }
            seen["tasks"] = runs()
            return bool(seen["finished"]) and seen["finished"] <= set(seen["tasks"])

        wait_until(flower_lists_every_finished_run, 15, "Flower to list every finished run")
        finished: set[str | None] = seen["finished"]
        tasks: dict[str, dict[str, Any]] = seen["tasks"]
        assert get(port, "/api/tasks", None)[0] == 401
        assert get(port, "/api/tasks", f"{USER}:wrong")[0] == 401
        # The deploy itself is a task too, listed under its own name.
        all_tasks = get(port, "/api/tasks?limit=1000", f"{USER}:{PASSWORD}")[1]
        assert any(t.get("name") == "drumline.deploy_workflow" for t in all_tasks.values())
    assert flower_process.returncode == 0, (tmp_path / "flower.log").read_text()[-2000:]

    assert tasks and all(task_id.startswith(prefix) for task_id in tasks), sorted(tasks)[:5]
    assert finished <= set(tasks), sorted(str(t) for t in finished - set(tasks))
    for task_id, task in tasks.items():
        assert task["uuid"] == task_id
        assert task["name"] == "drumline.run_producer"
        described = f"{task['args']} {task['kwargs']}"
        assert "'workflow': 'watched'" in described, task
        assert "'producer': 'tick'" in described, task
        assert f"'scheduled_for': '{task_id.removeprefix(prefix)}'" in described, task
    succeeded = [task for task in tasks.values() if task["state"] == "SUCCESS"]
    assert len(succeeded) >= 3
    assert all(task["worker"] and task["worker"].startswith("w1@") for task in succeeded)


def flower_routes() -> list[re.Pattern[str]]:
    """The path patterns of Flower's URL table, in routing order, as tornado builds them
    (with the static, favicon and robots routes that its `static_path` setting adds)."""
    app = tornado.web.Application(flower.urls.handlers, **flower.urls.settings)
    matchers = [rule.matcher for rule in app.wildcard_router.rules]
    assert all(isinstance(matcher, PathMatches) for matcher in matchers), matchers
    return [matcher.regex for matcher in matchers if isinstance(matcher, PathMatches)]


def sample_path(pattern: re.Pattern[str], worker: str, task_id: str) -> str:
    """A path that `pattern` matches, naming a real worker or task where it takes one."""
    text = pattern.pattern.removesuffix("$")
    head = text.split("(", 1)[0]
    value = worker if "worker" in head else "css/flower.css" if "static" in head else task_id
    text = re.sub(r"\((?:\.\+|\.\*)\)", lambda _: value, text)
    text = re.sub(r"\(([^()]*)\)", r"\1", text).replace("/?", "/").replace("\\", "")
    path = text.replace(".*", "/no-such-page")
    assert pattern.fullmatch(path), (pattern.pattern, path)
    return path


def test_the_gate_accepts_only_the_configured_credentials() -> None:
    credentials = [b"user:secret", b"other:pass:word"]

    def header(raw: bytes, scheme: str = "Basic") -> str:
        return f"{scheme} {base64.b64encode(raw).decode()}"

    assert authorized(header(b"user:secret"), credentials)
    assert authorized(header(b"other:pass:word"), credentials)
    assert authorized(header(b"user:secret", "basic"), credentials)
    for refused in (
        header(b"user:wrong"),
        header(b"user:secret", "Bearer"),
        header(b"user:secre"),
        "Basic not-base64!",
        "Basic",
        "",
    ):
        assert not authorized(refused, credentials), refused


@pytest.mark.parametrize("empty_db_url", ["sqlite"], indirect=True)
def test_no_flower_path_answers_without_credentials(
    env: dict[str, str], engine: Engine, tmp_path: Path
) -> None:
    """Every route of Flower's URL table, every method: 401 and no task or host name without
    credentials, even once Flower knows both; with them, every GET is served."""
    port = free_port()
    credentials = f"{USER}:{PASSWORD}"
    worker = f"w1@{socket.gethostname()}"
    tick = journal_producer(tmp_path / "journal.jsonl", interval="1s")
    definition = {"name": "swept", "producers": {"tick": tick}}
    with (
        running_flower(env, tmp_path, port, credentials),
        running_worker(env, tmp_path),
        running_beat(env, tmp_path),
    ):
        deploy(env, definition)
        known: dict[str, Any] = {}

        def flower_knows_a_run() -> bool:
            tasks = get(port, "/api/tasks?limit=100", credentials)[1] or {}
            known["runs"] = [
                task_id
                for task_id, task in tasks.items()
                if task["name"] == "drumline.run_producer" and task["state"] == "SUCCESS"
            ]
            metrics = fetch(port, "/metrics", credentials).body
            return bool(known["runs"]) and worker.encode() in metrics

        wait_until(flower_knows_a_run, 30, "a successful run in Flower, and w1 in /metrics")
        task_id = known["runs"][0]
        secrets = [b"drumline.run_producer", b"drumline.deploy_workflow", b"swept", b"w1@"]
        secrets += [socket.gethostname().encode(), task_id.encode()]
        metrics = fetch(port, "/metrics", credentials)
        assert metrics.status == 200 and b"drumline.run_producer" in metrics.body

        routes = flower_routes()
        served: dict[str, int] = {}
        for pattern in routes:
            path = sample_path(pattern, worker, task_id)
            if next(route for route in routes if route.fullmatch(path)) is not pattern:
                continue  # shadowed by an earlier route (tornado's second /static/): never served
            for method in METHODS:
                for who in (None, f"{USER}:wrong", f"nobody:{PASSWORD}"):
                    answer = fetch(port, path, who, method)
                    assert answer.status == 401, (method, path, who, answer)
                    leaked = [s for s in secrets if s in answer.body + answer.headers.encode()]
                    assert not leaked, (method, path, leaked)
            served[path] = fetch(port, path, credentials).status
    assert len(served) >= len(flower.urls.handlers), sorted(served)
    assert not {path: s for path, s in served.items() if s in (401, 403)}, served
    for path in ("/", "/metrics", "/healthcheck", "/api/tasks", "/tasks", "/static/css/flower.css"):
        assert served[path] == 200, (path, served)
    assert served[f"/task/{task_id}"] == 200, served


@pytest.mark.parametrize("empty_db_url", ["sqlite"], indirect=True)
def test_flower_shows_the_runs_beat_sent_before_any_worker_takes_them(
    env: dict[str, str], engine: Engine, tmp_path: Path
) -> None:
    """Beat's task-sent events reach Flower (grouped, as Celery's worker groups its own): with
    no worker on the producers queue, they are all Flower can know of these runs."""
    env = {**env, "DRUMLINE_TASK_EVENTS": "sent"}
    port = free_port()
    definition = {
        "name": "queued",
        "producers": {"tick": journal_producer(tmp_path / "journal.jsonl", interval="1s")},
    }
    with (
        running_flower(env, tmp_path, port, f"{USER}:{PASSWORD}"),
        running_worker(env, tmp_path, name="life", queues="lifecycle"),
        running_beat(env, tmp_path),
    ):
        wait_until(lambda: answers(port), 15, "Flower's API to answer")
        deploy(env, definition)

        def sent() -> list[dict[str, Any]]:
            status, tasks = get(port, "/api/tasks?limit=1000", f"{USER}:{PASSWORD}")
            assert status == 200
            runs = [task for task_id, task in tasks.items() if task_id.startswith("queued.tick@")]
            return [task for task in runs if task.get("name") == "drumline.run_producer"]

        wait_until(lambda: len(sent()) >= 1, 30, "Flower to list a run beat sent")
        [task, *_] = sent()
        assert task["state"] == "PENDING" and task["sent"] is not None, task
        assert "claim_token" in task["kwargs"], task

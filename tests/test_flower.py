"""Flower next to drumline: every producer run shows up, readable, behind basic auth."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from tests.e2e import deploy, journal_producer, runs_of, wait_until
from tests.processes import running_beat, running_flower, running_worker
from workers.redis_server import free_port

USER, PASSWORD = "user", "secret"


def get(port: int, path: str, credentials: str | None) -> tuple[int, Any]:
    """GET from Flower; returns the status and the decoded JSON body (None if not JSON)."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    if credentials is not None:
        token = base64.b64encode(credentials.encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            body = response.read()
            status = int(response.status)
    except urllib.error.HTTPError as error:
        return error.code, None
    try:
        return status, json.loads(body)
    except ValueError:
        return status, None


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
        running_flower(env, tmp_path, port, f"{USER}:{PASSWORD}") as flower,
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
    assert flower.process is not None and flower.process.returncode == 0, flower.log()[-2000:]

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

"""`drumline web` as a real process against real Redis, workers and both databases: no path
answers without credentials, no browser POST acts without the CSRF token, user text is escaped,
each action takes effect through the workers and lands in the history under the web user's
name, and the API answers as the CLI's --json."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from sqlalchemy import Engine
from starlette.routing import Mount, Route

from models.records import ScheduleRecord, WorkflowRecord
from models.run_store import RunStore
from models.schedule_store import ProducerScheduleStore
from models.slot_ledger import LedgerEntry
from models.slot_ledger_store import Ledger, record_ledger
from models.vocabulary import RunStatus, SlotFate, Trigger, WorkflowStatus
from models.workflow_store import WorkflowStore
from tests.e2e import deploy, wait_until
from tests.processes import client_app, running_worker
from tests.web import BASIC, BEARER, CREDENTIALS, WebServer, running_web
from workers.settings import Settings
from workers.web.app import create_app, credentials_of
from workers.web.auth import MAX_BODY_BYTES, SECURITY_HEADERS

HOSTILE = '<script>alert("owned")</script>'
HOSTILE_ERROR = "<img src=x onerror=alert(1)>"
MANUAL = {"run": "demo.counter"}  # no schedule: runs only when triggered


@pytest.fixture
def web(env: dict[str, str], tmp_path: Path) -> Iterator[WebServer]:
    with running_worker(env, tmp_path), running_web(env, tmp_path) as server:
        yield server


def workflow(engine: Engine, name: str) -> WorkflowRecord:
    record = WorkflowStore(engine).get(name)
    assert record is not None
    return record


def schedule(engine: Engine, name: str, producer: str) -> ScheduleRecord:
    row = ProducerScheduleStore(engine).get(workflow(engine, name).id, producer)
    assert row is not None
    return row


def cli_json(env: dict[str, str], *command: str) -> Any:
    """What `drumline COMMAND --json` prints."""
    cli = subprocess.run(
        [sys.executable, "-m", "workers.cli.main", *command, "--json"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(cli.stdout)


def every_route(env: dict[str, str]) -> list[tuple[str, str]]:
    """Each (method, path) the application serves, path parameters filled in, plus a static
    file, an unknown path and methods no route takes."""
    settings = Settings.from_env({**env, **CREDENTIALS})
    engine: Any = None  # never used: only the routes are read
    guard: Any = create_app(engine, client_app(env), settings, [], credentials_of(settings))
    routes: list[tuple[str, str]] = []
    for route in guard.app.routes:
        if isinstance(route, Route):
            path = route.path.replace("{name}", "wf").replace("{producer}", "p")
            routes += [(method, path) for method in sorted(route.methods or ())]
        elif isinstance(route, Mount):
            routes.append(("GET", route.path + "/style.css"))
    assert len(routes) > 15, routes
    return [*routes, ("GET", "/no/such/page"), ("PUT", "/"), ("DELETE", "/api/workflows")]


def test_every_route_asks_for_credentials_and_sets_security_headers(
    env: dict[str, str], tmp_path: Path
) -> None:
    wrong = ["Basic b3BlcmF0b3I6d3Jvbmc=", "Bearer not-the-token-0123456789abcdef", "", "Basic"]
    with running_web(env, tmp_path) as web:
        for method, path in every_route(env):
            for auth in [None, *wrong]:
                answer = web.request(path, method=method, auth=auth)
                assert answer.status == 401, (method, path, auth, answer.status)
                assert answer.headers["WWW-Authenticate"] == 'Basic realm="drumline web"'
                for header, value in SECURITY_HEADERS.items():
                    assert answer.headers[header] == value, (method, path, header)
        page = web.request("/")
        assert page.status == 200
        assert (
            page.headers["Content-Security-Policy"] == SECURITY_HEADERS["Content-Security-Policy"]
        )
        assert web.request("/static/style.css", auth=BEARER).status == 200
        assert web.request("/api/workflows", auth=BEARER).json() == {"workflows": []}


def test_a_browser_post_without_the_csrf_token_changes_nothing(
    env: dict[str, str], engine: Engine, web: WebServer
) -> None:
    deploy(env, {"name": "wf", "producers": {"p": MANUAL}})
    token = web.request("/workflows/wf/pause").csrf()
    refused = [
        web.request("/workflows/wf/pause", method="POST", form={"note": "x"}),
        web.request("/workflows/wf/pause", method="POST", form={"csrf": "forged"}),
        web.request(
            "/workflows/wf/pause",
            method="POST",
            form={"csrf": token},
            headers={"Origin": "http://evil.example"},
        ),
        web.request("/api/workflows/wf/pause", method="POST"),
        web.request("/workflows/wf/producers/p/trigger", method="POST", form={}),
        web.request("/deploy", method="POST", form={"definition": "name: other"}),
    ]
    assert [answer.status for answer in refused] == [403] * len(refused)
    assert "expired or did not come from drumline web" in refused[0].body
    assert "another site" in refused[2].body
    assert workflow(engine, "wf").status == WorkflowStatus.ACTIVE
    assert RunStore(engine).list(workflow(engine, "wf").id) == []
    assert WorkflowStore(engine).get("other") is None
    # No action by GET: the action's path shows its confirmation, and changes nothing.
    assert web.request("/workflows/wf/pause").status == 200
    assert workflow(engine, "wf").status == WorkflowStatus.ACTIVE


def test_user_text_is_escaped_on_every_page(
    env: dict[str, str], engine: Engine, web: WebServer
) -> None:
    deploy(
        env,
        {
            "name": "wf",
            "description": HOSTILE,
            "producers": {
                "boom": {"run": "demo.fail", "params": {"message": HOSTILE_ERROR}},
                "p": {"run": "demo.noop", "params": {"note": HOSTILE}},
            },
        },
    )
    token = web.request("/workflows/wf/producers/boom/trigger").csrf()
    outcome = web.request(
        "/workflows/wf/producers/boom/trigger", method="POST", form={"csrf": token}
    )
    assert outcome.status == 200
    assert 'id="outcome" class="status-failed">failed' in outcome.body
    pages = [
        web.request("/workflows/wf"),
        web.request("/workflows/wf/producers/boom"),
        web.request("/workflows/wf/producers/p"),
        outcome,
    ]
    for page in pages:
        assert page.status == 200
        assert "<script>alert" not in page.body
        assert "<img src=x" not in page.body
    assert "&lt;script&gt;alert(&#34;owned&#34;)&lt;/script&gt;" in pages[0].body
    assert "&lt;img src=x onerror=alert(1)&gt;" in pages[0].body  # the last failure
    assert "&lt;img src=x onerror=alert(1)&gt;" in pages[1].body  # the run's error
    assert "&lt;script&gt;" in pages[2].body  # params


def test_each_action_takes_effect_through_the_workers(
    env: dict[str, str], engine: Engine, web: WebServer
) -> None:
    definition = "name: wf\ndescription: from the web\nproducers:\n  p:\n    run: demo.counter\n"
    form = web.request("/deploy")
    plan = web.request(
        "/deploy/plan", method="POST", form={"csrf": form.csrf(), "definition": definition}
    )
    assert plan.status == 200 and "(new)" in plan.body and "added" in plan.body
    assert WorkflowStore(engine).get("wf") is None  # the plan changed nothing
    deployed = web.request(
        "/deploy",
        method="POST",
        form={"csrf": plan.csrf(), "definition": definition, "note": "first deploy"},
    )
    assert 'id="outcome" class="status-succeeded">done' in deployed.body, deployed.body
    assert workflow(engine, "wf").definition["description"] == "from the web"
    # The client's plan of a change: each changed field old -> new, next runs of what is new.
    changed = definition.replace("demo.counter", "demo.counter\n    params: {n: 2}")
    changed += "  q:\n    run: demo.noop\n    cron: '0 3 * * *'\n"
    replan = web.request(
        "/deploy/plan", method="POST", form={"csrf": form.csrf(), "definition": changed}
    )
    assert replan.status == 200 and "over v1" in replan.body, replan.body
    assert 'class="change-added">added' in replan.body
    assert 'params: <code class="old">{}</code> → <code class="new">{"n": 2}</code>' in (
        replan.body
    ), replan.body
    [q_runs] = [line for line in replan.body.splitlines() if "<td>q</td><td>" in line]
    assert q_runs.count("T03:00:00+00:00") == 3, q_runs
    assert workflow(engine, "wf").version == 1  # the plan changed nothing

    token = web.request("/workflows/wf/pause").csrf()
    paused = web.request(
        "/workflows/wf/pause", method="POST", form={"csrf": token, "note": "maintenance"}
    )
    assert "now paused" in paused.body and "maintenance" in paused.body
    assert workflow(engine, "wf").status == WorkflowStatus.PAUSED
    logged = "pause of workflow wf requested from the web with the note "
    assert logged + "maintenance, by web:operator" in web.process.log()
    refused = web.request("/workflows/wf/producers/p/trigger", method="POST", form={"csrf": token})
    assert refused.status == 409 and "is paused" in refused.body
    resumed = web.request("/workflows/wf/resume", method="POST", form={"csrf": token})
    assert "now active" in resumed.body
    assert workflow(engine, "wf").status == WorkflowStatus.ACTIVE

    triggered = web.request(
        "/workflows/wf/producers/p/trigger", method="POST", form={"csrf": token}
    )
    assert 'class="status-succeeded">succeeded' in triggered.body, triggered.body
    [run] = RunStore(engine).list(workflow(engine, "wf").id)
    assert (run.trigger, run.status) == (Trigger.MANUAL, RunStatus.SUCCEEDED)
    assert f'href="http://127.0.0.1:5555/task/{quote(str(run.task_id), safe="")}"' in triggered.body

    # A script: bearer token, no CSRF token, the CLI's JSON shapes.
    by_api = web.request("/api/workflows/wf/producers/p/trigger", method="POST", auth=BEARER)
    assert by_api.status == 200 and by_api.json()["status"] == RunStatus.SUCCEEDED
    bad_note = web.request("/api/workflows/wf/pause", method="POST", auth=BEARER, body=[1])
    assert bad_note.status == 400 and workflow(engine, "wf").status == WorkflowStatus.ACTIVE
    paused_by_api = web.request(
        "/api/workflows/wf/pause", method="POST", auth=BEARER, body={"note": "from a script"}
    )
    assert logged + "from a script, by web:token" in web.process.log()
    assert paused_by_api.json()[0]["summary"]["status"] == WorkflowStatus.PAUSED
    assert workflow(engine, "wf").status == WorkflowStatus.PAUSED
    redeploy = web.request(
        "/api/deploy",
        method="POST",
        auth=BEARER,
        body={"name": "wf", "producers": {"p": {"run": "demo.counter"}, "q": MANUAL}},
    )
    assert redeploy.json()[0]["summary"]["added"] == ["q"]
    bad = web.request("/api/deploy", method="POST", auth=BEARER, body={"name": "wf"})
    assert bad.status == 422 and bad.json()["problems"][0]["path"] == "producers"

    # Every change, by the page or the API, is in the history with its actor and note.
    changes = web.request("/api/workflows/wf/history", auth=BEARER).json()["changes"]
    assert [(c["version"], c["action"], c["actor"], c["note"]) for c in changes] == [
        (5, "deploy", "web:token", None),
        (4, "pause", "web:token", "from a script"),
        (3, "resume", "web:operator", None),
        (2, "pause", "web:operator", "maintenance"),
        (1, "deploy", "web:operator", "first deploy"),
    ]
    page = web.request("/workflows/wf/history")
    assert page.status == 200 and page.body.count('<td class="actor">web:operator</td>') == 3
    assert '<td class="note">maintenance</td>' in page.body
    assert 'class="change-added">added</td>' in page.body  # v5 added q
    assert "paused" in page.body and "active" in page.body  # the status changes
    assert web.request("/workflows/nope/history").status == 404
    assert web.request("/api/workflows/nope/history").status == 404


def test_the_api_answers_as_the_cli_json_does(
    env: dict[str, str], engine: Engine, web: WebServer
) -> None:
    deploy(
        env,
        {"name": "wf", "producers": {"p": MANUAL, "q": {"run": "demo.noop", "cron": "0 3 * * *"}}},
    )
    web.request("/api/workflows/wf/producers/p/trigger", method="POST", auth=BEARER)
    wait_until(
        lambda: bool(RunStore(engine).list(workflow(engine, "wf").id)), 10, "the triggered run"
    )
    for api, command in [
        ("/api/workflows", ["ls"]),
        ("/api/workflows/wf", ["status", "wf"]),
        ("/api/workflows/wf/runs?limit=5", ["runs", "wf", "--limit", "5"]),
        ("/api/workflows/wf/runs?producer=p", ["runs", "wf", "--producer", "p"]),
        ("/api/workflows/wf/history", ["history", "wf"]),
        ("/api/workflows/wf/history?limit=1", ["history", "wf", "--limit", "1"]),
    ]:
        assert web.request(api, auth=BASIC).json() == cli_json(env, *command), api
    assert web.request("/api/workflows/wf/runs?limit=0").status == 400
    assert web.request("/api/workflows/nope").json() == {"error": "no workflow named 'nope'"}


def test_a_producer_page_lists_its_slot_outcomes_and_the_api_answers_as_the_cli(
    env: dict[str, str], engine: Engine, web: WebServer
) -> None:
    deploy(
        env,
        {"name": "wf", "producers": {"p": {"run": "demo.noop", "cron": "0 3 * * *"}, "q": MANUAL}},
    )
    slot = datetime(2026, 1, 1, 3, tzinfo=UTC)
    day = timedelta(days=1)
    entries = {
        "p": (
            LedgerEntry(slot, SlotFate.SUCCEEDED, "ran", "catch-up latest", attempts=1),
            LedgerEntry(
                slot + day,
                SlotFate.COALESCED,
                HOSTILE_ERROR,
                "overlap skip",
                range_end=slot + 4 * day,
                slot_count=3,
            ),
        ),
        "q": (LedgerEntry(slot, SlotFate.FAILED, "q's own", "none", attempts=2),),
    }
    workflow_id = workflow(engine, "wf").id
    with engine.begin() as conn:
        for producer, ledger in entries.items():
            record_ledger(conn, Ledger(workflow_id, producer, ledger), now=slot)

    page = web.request("/workflows/wf/producers/p")
    assert page.status == 200
    [table] = [part for part in page.body.split("<h2>") if 'id="outcomes"' in part]
    assert table.count('<tr class="outcome">') == 2, table
    assert '<td class="status-coalesced">coalesced</td>' in table
    assert "<td>3</td>" in table and "overlap skip" in table and "catch-up latest" in table
    assert "&lt;img src=x onerror=alert(1)&gt;" in table and "<img src=x" not in page.body
    assert "q&#39;s own" not in table  # another producer's slot
    assert 'id="policy"' in page.body

    api = "/api/workflows/wf/producers/p/outcomes"
    answer = web.request(api, auth=BASIC).json()
    assert [o["outcome"] for o in answer["outcomes"]] == ["coalesced", "succeeded"]
    assert answer == cli_json(env, "runs", "wf", "--producer", "p", "--outcomes")
    assert web.request(api + "?limit=1", auth=BEARER).json() == cli_json(
        env, "runs", "wf", "--producer", "p", "--outcomes", "--limit", "1"
    )
    assert web.request(api + "?limit=0", auth=BEARER).status == 400
    missing = web.request("/api/workflows/wf/producers/nope/outcomes", auth=BEARER)
    assert missing.status == 404 and "has no producer 'nope'" in missing.json()["error"]
    # The workflow page shows each producer's policy.
    overview = web.request("/workflows/wf")
    policies = overview.body.count('<td class="policy">')
    assert policies == 2 and schedule(engine, "wf", "p").paused is False


def test_one_producer_pauses_and_resumes_with_a_note_from_its_page_and_the_api(
    env: dict[str, str], engine: Engine, web: WebServer
) -> None:
    deploy(
        env,
        {"name": "wf", "producers": {"p": {"run": "demo.noop", "cron": "0 3 * * *"}, "q": MANUAL}},
    )
    here = "/workflows/wf/producers/p"
    assert 'id="pause-producer"' in web.request(here).body
    confirm = web.request(here + "/pause")
    assert confirm.status == 200 and f'action="{here}/pause"' in confirm.body
    assert web.request("/workflows/wf/producers/nope/pause").status == 404
    note = "vendor outage <b>"
    forged = web.request(here + "/pause", method="POST", form={"note": note, "csrf": "forged"})
    assert forged.status == 403 and schedule(engine, "wf", "p").paused is False

    paused = web.request(
        here + "/pause", method="POST", form={"csrf": confirm.csrf(), "note": note}
    )
    assert 'id="outcome" class="status-succeeded">done' in paused.body, paused.body
    assert "vendor outage &lt;b&gt;" in paused.body and "<b>" not in paused.body
    row = schedule(engine, "wf", "p")
    assert (row.paused, row.paused_by, row.pause_note) == (True, "web:operator", note)
    assert not schedule(engine, "wf", "q").paused
    assert workflow(engine, "wf").status == WorkflowStatus.ACTIVE
    logged = "pause of producer wf.p requested from the web with the note "
    assert logged + "vendor outage <b>, by web:operator" in web.process.log()

    overview = web.request("/workflows/wf")
    assert '<span class="status-paused">paused</span> <span class="paused-by">by web:operator' in (
        overview.body
    ), overview.body
    assert '<q class="note">vendor outage &lt;b&gt;</q>' in overview.body
    producer_page = web.request(here)
    assert 'id="resume-producer"' in producer_page.body
    assert 'id="paused-by">paused by web:operator' in producer_page.body

    # A script: bearer token, no CSRF token, the CLI's `pause|resume --producer --json`.
    resumed = web.request(
        here.replace("/workflows", "/api/workflows", 1) + "/resume", method="POST", auth=BEARER
    )
    assert resumed.status == 200, resumed.body
    [change] = resumed.json()
    assert change["ok"] and change["workflow"] == "wf" and change["error"] is None
    assert schedule(engine, "wf", "p").paused is False
    by_api = web.request(
        "/api/workflows/wf/producers/q/pause", method="POST", auth=BEARER, body={"note": "later"}
    )
    assert by_api.status == 200 and by_api.json()[0]["ok"]
    row = schedule(engine, "wf", "q")
    assert (row.paused, row.paused_by, row.pause_note) == (True, "web:token", "later")
    unknown = web.request("/api/workflows/wf/producers/nope/pause", method="POST", auth=BEARER)
    assert unknown.status == 409 and "has no producer 'nope'" in unknown.json()[0]["error"]
    bad_note = web.request(
        "/api/workflows/wf/producers/p/pause", method="POST", auth=BEARER, body={"note": 1}
    )
    assert bad_note.status == 400 and schedule(engine, "wf", "p").paused is False
    assert web.request("/api/workflows/wf", auth=BEARER).json() == cli_json(env, "status", "wf")
    # Each producer's pause and resume is in the history, naming it, at the workflow's version.
    changes = web.request("/api/workflows/wf/history", auth=BEARER).json()["changes"]
    assert [(c["version"], c["action"], c["producer"], c["actor"], c["note"]) for c in changes] == [
        (1, "pause_producer", "q", "web:token", "later"),
        (1, "resume_producer", "p", "web:token", None),
        (1, "pause_producer", "p", "web:operator", note),
        (1, "deploy", None, "unknown", None),
    ]
    assert changes == cli_json(env, "history", "wf")["changes"]
    page = web.request("/workflows/wf/history")
    assert page.body.count('<td class="producer">p</td>') == 2
    assert '<td class="note">vendor outage &lt;b&gt;</td>' in page.body
    assert "<b>" not in page.body


def test_a_bad_definition_lists_its_problems_and_deploys_nothing(
    env: dict[str, str], engine: Engine, tmp_path: Path
) -> None:
    with running_web(env, tmp_path) as web:
        token = web.request("/deploy").csrf()
        pasted = web.request(
            "/deploy/plan",
            method="POST",
            form={"csrf": token, "definition": f"name: wf\nproducers:\n  p: {{run: {HOSTILE}}}"},
        )
        assert pasted.status == 422
        assert "producers.p.run" in pasted.body and "<script>" not in pasted.body
        boundary = "drumline-test-boundary"
        parts = [
            f'--{boundary}\r\nContent-Disposition: form-data; name="csrf"\r\n\r\n{token}\r\n',
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="wf.yaml"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n",
        ]
        body = "".join(parts).encode() + b"name: \xff\xfe\r\n" + f"--{boundary}--\r\n".encode()
        uploaded = web.request(
            "/deploy/plan",
            method="POST",
            body_bytes=body,
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        )
        assert (
            uploaded.status == 422 and "file &#39;wf.yaml&#39;: is not UTF-8 text" in uploaded.body
        )
        # A body announced larger than the bound is refused before a byte of it is read.
        with socket.create_connection(("127.0.0.1", web.port), timeout=10) as sock:
            sock.sendall(
                f"POST /deploy/plan HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {BASIC}\r\n"
                f"Content-Length: {MAX_BODY_BYTES + 1}\r\n\r\n".encode()
            )
            assert sock.recv(100).startswith(b"HTTP/1.1 413 ")
    assert WorkflowStore(engine).get("wf") is None


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        ({}, "drumline web needs credentials: set DRUMLINE_WEB_BASIC_AUTH"),
        ({"DRUMLINE_WEB_BASIC_AUTH": "nopassword"}, "DRUMLINE_WEB_BASIC_AUTH must be user:"),
        ({"DRUMLINE_WEB_TOKEN": "short"}, "DRUMLINE_WEB_TOKEN must be at least 24"),
        ({**CREDENTIALS, "DRUMLINE_FLOWER_URL": "javascript:alert(1)"}, "DRUMLINE_FLOWER_URL"),
    ],
)
def test_drumline_web_refuses_to_start_without_sound_credentials(
    tmp_path: Path, variables: dict[str, str], expected: str
) -> None:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("DRUMLINE_")}
    environment["DRUMLINE_DATA_DIR"] = str(tmp_path)  # no database: refused before it matters
    refused = subprocess.run(
        [sys.executable, "-m", "workers.cli.main", "web", "--port", "1"],
        env={**environment, **variables},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert refused.returncode == 1 and expected in refused.stderr, refused.stderr
    assert "short" not in refused.stderr and "nopassword" not in refused.stderr

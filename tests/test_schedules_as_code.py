"""Schedules as code through real processes: `drumline plan`, deploy, history, diff, rollback and
prune from the command line, concurrent deploys, and the Python client from a plain Python
process. Real Redis, a real worker, SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery
from sqlalchemy import Engine

from models.change_store import ChangeStore
from models.definitions import parse_definition
from models.errors import LifecycleError, WorkflowBusyError
from models.schedule_store import ProducerScheduleStore
from models.vocabulary import ChangeAction
from models.workflow_store import WorkflowStore
from tests.databases import table_dump
from tests.processes import CeleryProcess, client_app, running_worker
from workers.services.locks import WorkflowLocks

TIMEOUT_S = 60
CONCURRENT_DEPLOYS = 12
HELD_OFF = 2  # deploys sent while the workflow's lock is held: refused as busy


def drumline(env: Mapping[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "workers.cli.main", *args]
    return subprocess.run(
        command, env={**os.environ, **env}, capture_output=True, text=True, timeout=90, check=False
    )


def write(path: Path, definition: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(definition))
    return path


def workflow(name: str, **producers: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "producers": producers}


def schedules(engine: Engine, name: str) -> dict[str, tuple[str, str, dict[str, Any]]]:
    record = WorkflowStore(engine).get(name)
    assert record is not None
    return {
        row.producer_name: (row.schedule_type, row.schedule_value, row.params)
        for row in ProducerScheduleStore(engine).list(record.id)
    }


@pytest.fixture
def worker(drumline_env: dict[str, str], tmp_path: Path) -> Iterator[CeleryProcess]:
    with running_worker(drumline_env, tmp_path) as process:
        yield process


V1 = workflow(
    "prices",
    keep={"run": "demo.noop", "interval": "1h"},
    retime={"run": "demo.noop", "cron": "0 3 * * *", "timezone": "Europe/Berlin"},
    reconfigure={"run": "demo.counter", "interval": "10m", "params": {"symbol": "EURUSD"}},
    drop={"run": "demo.noop", "interval": "5m"},
)
V2 = workflow(
    "prices",
    keep={"run": "demo.noop", "interval": "1h"},
    retime={"run": "demo.noop", "cron": "30 4 * * *", "timezone": "Europe/Berlin"},
    reconfigure={"run": "demo.counter", "interval": "10m", "params": {"symbol": "GBPUSD"}},
    fresh={"run": "demo.noop", "cron": "15 6 * * 1", "timezone": "UTC"},
)


def test_plan_shows_what_the_deploy_then_does_and_writes_nothing(
    drumline_env: dict[str, str], engine: Engine, worker: CeleryProcess, tmp_path: Path
) -> None:
    env = drumline_env
    first = drumline(env, "deploy", str(write(tmp_path / "v1" / "prices.json", V1)))
    assert first.returncode == 0, first.stderr
    path = write(tmp_path / "v2" / "prices.json", V2)

    before = table_dump(engine)
    planned = drumline(env, "plan", str(path), "--json")
    text = drumline(env, "deploy", str(path), "--plan")
    assert table_dump(engine) == before  # plans write nothing
    assert (planned.returncode, text.returncode) == (2, 2), planned.stderr + text.stderr
    plan = json.loads(planned.stdout)
    assert plan["changes"] is True
    (view,) = plan["workflows"]
    assert (view["workflow"], view["action"], view["version"]) == ("prices", "update", 1)
    assert (view["added"], view["removed"], view["unchanged"]) == (["fresh"], ["drop"], ["keep"])
    assert view["changed"] == {
        "reconfigure": {"params": {"old": {"symbol": "EURUSD"}, "new": {"symbol": "GBPUSD"}}},
        "retime": {"schedule_value": {"old": "0 3 * * *", "new": "30 4 * * *"}},
    }
    assert sorted(view["next_runs"]) == ["fresh", "retime"]  # the re-scheduled ones
    assert all(len(times) == 3 for times in view["next_runs"].values())
    assert "prices: update v1" in text.stdout
    assert "  ~ changed retime: schedule_value: '0 3 * * *' -> '30 4 * * *'" in text.stdout
    assert "Plan: 0 to create, 1 to update, 0 to delete, 0 unchanged." in text.stdout

    deployed = drumline(env, "deploy", str(path), "--json")
    assert deployed.returncode == 0, deployed.stderr
    (outcome,) = json.loads(deployed.stdout)
    summary = outcome["summary"]
    for kind in ("added", "removed", "unchanged"):
        assert summary[kind] == view[kind]
    assert summary["changed"] == sorted(view["changed"])
    assert schedules(engine, "prices") == {
        "keep": ("interval", "1h", {}),
        "retime": ("cron", "30 4 * * *", {}),
        "reconfigure": ("interval", "10m", {"symbol": "GBPUSD"}),
        "fresh": ("cron", "15 6 * * 1", {}),
    }
    record = WorkflowStore(engine).get("prices")
    assert record is not None
    rows = {r.producer_name: r for r in ProducerScheduleStore(engine).list(record.id)}
    for name in ("fresh", "retime"):  # cron: the same next run whenever it is computed today
        next_run = rows[name].next_run_at
        assert next_run is not None and next_run.isoformat() == view["next_runs"][name][0]

    again = drumline(env, "plan", str(path))
    assert again.returncode == 0, again.stderr
    assert "prices v2: no change" in again.stdout
    settled = table_dump(engine)
    redeployed = drumline(env, "deploy", str(path))  # what the plan said: nothing
    assert (redeployed.returncode, redeployed.stdout) == (0, "prices v2: no change\n")
    assert table_dump(engine) == settled
    new = drumline(env, "plan", str(write(tmp_path / "v3" / "other.json", V1 | {"name": "n"})))
    assert new.returncode == 2 and "n: create" in new.stdout


def test_concurrent_deploys_leave_one_history_entry_per_applied_change(
    drumline_env: dict[str, str], engine: Engine, redis_url: str, tmp_path: Path
) -> None:
    client = client_app(drumline_env)
    definitions = [
        workflow("contended", shared={"run": "demo.noop", "interval": f"{i + 1}m"})
        for i in range(CONCURRENT_DEPLOYS + HELD_OFF)
    ]

    def send(index: int) -> Any:
        return client.send_task(
            "drumline.deploy_workflow",
            args=[definitions[index]],
            kwargs={"actor": f"deployer-{index}"},
        )

    locks = WorkflowLocks(
        redis.Redis.from_url(redis_url), timeout=timedelta(seconds=60), wait=timedelta(0)
    )
    with running_worker(drumline_env, tmp_path, concurrency=4):
        # Refused for sure: sent and answered while another change holds the lock.
        with locks.hold("contended"):
            busy = [send(i).get(timeout=TIMEOUT_S, propagate=False) for i in range(HELD_OFF)]
        pending = [send(i) for i in range(HELD_OFF, len(definitions))]
        answers = [result.get(timeout=TIMEOUT_S, propagate=False) for result in pending]
    client.close()
    assert all(isinstance(answer, WorkflowBusyError) for answer in busy), busy
    outcomes = dict(enumerate([*busy, *answers]))
    applied = {o["version"]: i for i, o in outcomes.items() if isinstance(o, dict)}
    refused = [o for o in outcomes.values() if not isinstance(o, dict)]
    assert all(isinstance(o, LifecycleError) for o in refused), refused
    assert applied, outcomes

    entries = list(reversed(ChangeStore(engine).list("contended", 1000)))
    versions = [entry.version for entry in entries]
    assert versions == list(range(1, len(entries) + 1))  # strictly increasing, none skipped
    assert sorted(applied) == versions  # one entry per applied change, none for the refused
    for entry in entries:
        index = applied[entry.version]
        assert entry.actor == f"deployer-{index}"
        assert entry.definition == parse_definition(definitions[index]).model_dump(mode="json")
        assert entry.action == ChangeAction.DEPLOY
    record = WorkflowStore(engine).get("contended")
    assert record is not None and record.version == versions[-1]
    assert record.definition == entries[-1].definition


def test_rollback_restores_the_old_producers_and_records_itself(
    drumline_env: dict[str, str], engine: Engine, worker: CeleryProcess, tmp_path: Path
) -> None:
    env = drumline_env
    for version, definition in (("v1", V1), ("v2", V2)):
        done = drumline(
            env,
            "deploy",
            str(write(tmp_path / version / "prices.json", definition)),
            "--actor",
            "ci@runner",
            "--note",
            f"release {version}",
        )
        assert done.returncode == 0, done.stderr
    v2 = schedules(engine, "prices")

    before = table_dump(engine)
    planned = drumline(env, "rollback", "prices", "--to", "1", "--plan", "--json")
    assert planned.returncode == 2, planned.stderr
    assert table_dump(engine) == before
    (view,) = json.loads(planned.stdout)["workflows"]
    assert (view["added"], view["removed"]) == (["drop"], ["fresh"])

    rolled = drumline(env, "rollback", "prices", "--to", "1", "--note", "v2 broke reports")
    assert rolled.returncode == 0, rolled.stderr
    assert rolled.stdout.startswith("prices v3: added drop; changed reconfigure, retime;")
    assert schedules(engine, "prices") == {
        "keep": ("interval", "1h", {}),
        "retime": ("cron", "0 3 * * *", {}),
        "reconfigure": ("interval", "10m", {"symbol": "EURUSD"}),
        "drop": ("interval", "5m", {}),
    }
    assert schedules(engine, "prices") != v2

    shown = drumline(env, "history", "prices", "--json")
    assert shown.returncode == 0, shown.stderr
    changes = json.loads(shown.stdout)["changes"]
    assert [(c["version"], c["action"], c["note"]) for c in changes] == [
        (3, "rollback", "v2 broke reports"),
        (2, "deploy", "release v2"),
        (1, "deploy", "release v1"),
    ]
    assert changes[0]["diff"]["rollback_of"] == 1
    assert changes[1]["actor"] == "ci@runner"
    table = drumline(env, "history", "prices")
    assert "rollback" in table.stdout and "v2 broke reports" in table.stdout

    same = drumline(env, "diff", "prices", "--from", "1", "--to", "3")
    assert (same.returncode, same.stdout) == (
        0,
        "prices: v1 -> v3\n  = unchanged drop, keep, reconfigure, retime\n",
    )
    latest = drumline(env, "diff", "prices")
    assert latest.returncode == 0, latest.stderr
    assert "prices: v2 -> v3" in latest.stdout and "  + added drop" in latest.stdout
    missing = drumline(env, "rollback", "prices", "--to", "9")
    assert missing.returncode == 1
    assert "workflow 'prices' has no version 9 in its history" in missing.stderr


def test_prune_deletes_only_the_workflows_without_a_file(
    drumline_env: dict[str, str], engine: Engine, worker: CeleryProcess, tmp_path: Path
) -> None:
    env = drumline_env
    tree = tmp_path / "workflows"
    write(tree / "a.yaml", workflow("a", p={"run": "demo.noop", "interval": "1h"}))
    write(tree / "b.json", workflow("b", p={"run": "demo.noop", "interval": "2h"}))
    stray = write(tmp_path / "elsewhere" / "c.json", workflow("c", p={"run": "demo.noop"}))
    assert drumline(env, "deploy", str(tree)).returncode == 0
    assert drumline(env, "deploy", str(stray)).returncode == 0

    stray_record = WorkflowStore(engine).get("c")
    assert stray_record is not None
    refused = drumline(env, "deploy", str(tree / "a.yaml"), "--prune")
    assert refused.returncode == 2 and "--prune takes directories only" in refused.stderr
    before = table_dump(engine)
    plain = drumline(env, "deploy", str(tree))  # without --prune nothing is deleted
    assert plain.returncode == 0, plain.stderr
    assert table_dump(engine) == before
    planned = drumline(env, "deploy", str(tree), "--prune", "--plan")
    assert planned.returncode == 2, planned.stderr
    assert table_dump(engine) == before
    assert "c: delete v1 (no file; --prune)\n  - removed p" in planned.stdout
    assert "Plan: 0 to create, 0 to update, 1 to delete, 2 unchanged." in planned.stdout

    pruned = drumline(env, "deploy", str(tree), "--prune")
    assert pruned.returncode == 0, pruned.stderr
    assert "c v2: deleted" in pruned.stdout  # the delete entry's version
    assert [w.name for w in WorkflowStore(engine).list()] == ["a", "b"]
    after = table_dump(engine)
    for table, workflow_id in (("workflows", 0), ("producer_schedules", 1)):  # a, b untouched
        kept = [row for row in before[table] if row[workflow_id] != stray_record.id]
        assert after[table] == kept
    history = drumline(env, "history", "c", "--json")  # a deleted workflow's history stays
    assert history.returncode == 0, history.stderr
    assert [c["action"] for c in json.loads(history.stdout)["changes"]] == ["delete", "deploy"]
    assert drumline(env, "plan", str(tree), "--prune").returncode == 0


CLIENT_SCRIPT = textwrap.dedent(
    """
    import json
    from models.errors import WorkflowNotFoundError
    from workers.client import Drumline

    drumline = Drumline(actor="app@test")
    summary = drumline.deploy(
        {"name": "app", "producers": {"count": {"run": "demo.counter"}}}, note="from the app"
    )
    run = drumline.trigger("app", "count", wait=30)
    runs = drumline.runs("app")
    history = drumline.history("app")
    try:
        drumline.pause("nope")
    except WorkflowNotFoundError as error:
        refusal = f"{type(error).__name__}: {error}"
    print(json.dumps({
        "summary": summary.to_json(),
        "run": [run.status, run.result],
        "runs": [[r.producer_name, r.trigger, r.status] for r in runs],
        "history": [[h.version, h.action, h.actor, h.note] for h in history],
        "refusal": refusal,
    }))
    """
)


def test_the_client_from_a_plain_python_process_deploys_triggers_and_reads_runs(
    drumline_env: dict[str, str], worker: CeleryProcess
) -> None:
    done = subprocess.run(
        [sys.executable, "-c", CLIENT_SCRIPT],
        env={**os.environ, **drumline_env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert (out["summary"]["version"], out["summary"]["added"]) == (1, ["count"])
    assert out["run"] == ["succeeded", {"count": 1}]
    assert out["runs"] == [["count", "manual", "succeeded"]]
    assert out["history"] == [[1, "deploy", "app@test", "from the app"]]
    assert out["refusal"] == "WorkflowNotFoundError: workflow 'nope' does not exist"


def test_a_bad_note_actor_or_name_is_refused_before_sending(
    drumline_env: dict[str, str], tmp_path: Path
) -> None:
    """No worker runs here: a refused note must not even reach the broker."""
    path = write(tmp_path / "prices.json", V1)
    too_long = drumline(drumline_env, "deploy", str(path), "--note", "n" * 2001, "--no-wait")
    assert too_long.returncode == 2  # a bad option value, named (--note)
    assert "note must be at most 2000 characters" in too_long.stderr
    bad_actor = drumline(drumline_env, "pause", "prices", "--actor", "a\tb", "--no-wait")
    assert bad_actor.returncode == 2
    assert "--actor" in bad_actor.stderr and "printable" in bad_actor.stderr
    unknown = write(tmp_path / "unknown.json", workflow("x", p={"run": "nope.missing"}))
    planned = drumline(drumline_env, "plan", str(unknown))
    assert planned.returncode == 1
    assert "workflow 'x': invalid definition: producers.p.run" in planned.stderr
    cron = write(
        tmp_path / "cron.json", workflow("x", p={"run": "demo.noop", "cron": "61 * * * *"})
    )
    planned = drumline(drumline_env, "plan", str(cron))
    assert planned.returncode == 1 and "producers.p.cron" in planned.stderr
    bad_name = drumline(drumline_env, "pause", "Bad\nName", "--no-wait")
    assert bad_name.returncode == 1
    assert "'Bad\\nName' cannot be a workflow name" in bad_name.stderr
    client = Celery(broker=drumline_env["DRUMLINE_BROKER_URL"])
    with client.connection() as connection:
        assert connection.default_channel.client.llen("lifecycle") == 0
    client.close()

"""Every pause is in the history: one producer paused or resumed by hand, or paused by its
`pause_after_failures`, is a `workflow_changes` entry naming the producer, committed with the
change, at the workflow's version. Real Redis, real SQLite and PostgreSQL; the auto-pause with
real worker and beat processes."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner
from sqlalchemy import Engine

from models.change_store import ChangeAuthor, ChangeRecord, ChangeStore
from models.errors import ProducerNotFoundError, WorkflowNotFoundError
from models.vocabulary import ChangeAction
from tests.clock import Clock
from tests.databases import table_dump
from tests.e2e import deploy, wait_until
from tests.processes import running_beat, running_worker
from tests.test_lifecycle import definition, every, make_lifecycle
from workers.cli.main import cli
from workers.client import Drumline
from workers.services.lifecycle import Lifecycle
from workers.services.locks import WorkflowLocks
from workers.services.producer_pause import ProducerPauses
from workers.settings import Settings

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
ALICE = ChangeAuthor("alice@ops", "vendor maintenance")


def _pauses(engine: Engine, client: redis.Redis, clock: Clock, keep: int = 100) -> ProducerPauses:
    locks = WorkflowLocks(client, timeout=timedelta(seconds=5), wait=timedelta(seconds=2))
    return ProducerPauses(engine, locks, now=clock, history_kept=keep)


def _entries(engine: Engine, name: str = "prices") -> list[ChangeRecord]:
    """The workflow's entries, oldest first."""
    return list(reversed(ChangeStore(engine).list(name, 1000)))


def _summary(entries: list[ChangeRecord]) -> list[tuple[int, str, str | None, str]]:
    return [(e.version, e.action.value, e.producer, e.actor) for e in entries]


def test_pausing_one_producer_with_a_note_is_in_the_history_with_its_actor_and_note(
    engine: Engine, redis_client: redis.Redis, db_url: str
) -> None:
    clock = Clock(T0)
    lifecycle = make_lifecycle(engine, redis_client, clock)
    lifecycle.deploy(definition(fast=every("1m"), slow=every("1h")))
    lifecycle.deploy(definition(fast=every("2m"), slow=every("1h")))
    pauses = _pauses(engine, redis_client, clock)

    pauses.pause("prices", "fast", author=ALICE)
    clock.now = T0 + 5 * MINUTE
    pauses.resume("prices", "fast", author=ChangeAuthor("bob@ops", "vendor is back"))
    pauses.resume("prices", "fast", author=ALICE)  # not paused: a no-op, no entry

    entries = _entries(engine)
    assert _summary(entries) == [
        (1, "deploy", None, "unknown"),
        (2, "deploy", None, "unknown"),
        (2, "pause_producer", "fast", "alice@ops"),  # the workflow stays at v2
        (2, "resume_producer", "fast", "bob@ops"),
    ]
    paused, resumed = entries[2], entries[3]
    assert (paused.note, paused.changed_at) == ("vendor maintenance", T0)
    assert paused.diff == {"status": {"old": "active", "new": "paused"}}
    assert paused.definition == entries[1].definition
    assert (resumed.note, resumed.changed_at) == ("vendor is back", T0 + 5 * MINUTE)
    assert resumed.diff == {"status": {"old": "paused", "new": "active"}, "rescheduled": ["fast"]}
    workflow = lifecycle.workflows.get("prices")
    assert workflow is not None and workflow.version == 2

    # The CLI shows them with the producer; `diff` compares the definitions, skipping them.
    env = {"DRUMLINE_DATABASE_URL": db_url}
    shown = CliRunner().invoke(cli, ["history", "prices", "--json"], env=env)
    assert shown.exit_code == 0, shown.output
    changes = json.loads(shown.output)["changes"]
    assert [(c["action"], c["producer"], c["actor"], c["note"]) for c in changes[:2]] == [
        ("resume_producer", "fast", "bob@ops", "vendor is back"),
        ("pause_producer", "fast", "alice@ops", "vendor maintenance"),
    ]
    table = CliRunner().invoke(cli, ["history", "prices"], env=env).output
    assert "pause_producer" in table and "alice@ops" in table and "vendor maintenance" in table
    pause_line = next(line for line in table.splitlines() if "pause_producer" in line)
    assert "fast" in pause_line and "active -> paused" in pause_line
    compared = CliRunner().invoke(cli, ["diff", "prices"], env=env)
    assert compared.exit_code == 0, compared.output
    assert compared.output.startswith("prices: v1 -> v2\n")
    assert "schedule_value" in compared.output
    client = Drumline(Settings.from_env(env), engine=engine)
    assert [e.producer for e in client.history("prices", limit=2)] == ["fast", "fast"]


def test_a_workflow_paused_after_a_producer_pause_keeps_one_entry_per_version(
    engine: Engine, redis_client: redis.Redis
) -> None:
    clock = Clock(T0)
    lifecycle = make_lifecycle(engine, redis_client, clock)
    lifecycle.deploy(definition(fast=every("1m"), slow=every("1h")))
    pauses = _pauses(engine, redis_client, clock)
    pauses.pause("prices", "fast", author=ALICE)
    pauses.pause("prices", "fast", author=ChangeAuthor("carol", "still down"))  # again: recorded
    lifecycle.pause("prices", author=ALICE)
    lifecycle.resume("prices", author=ALICE)
    assert _summary(_entries(engine)) == [
        (1, "deploy", None, "unknown"),
        (1, "pause_producer", "fast", "alice@ops"),
        (1, "pause_producer", "fast", "carol"),
        (2, "pause", None, "alice@ops"),
        (3, "resume", None, "alice@ops"),
    ]
    assert _entries(engine)[2].diff == {"status": {"old": "paused", "new": "paused"}}
    # Rollback and `--from/--to` name versions: a version is its workflow-wide entry.
    entry = lifecycle.change("prices", 1)
    assert (entry.action, entry.producer) == (ChangeAction.DEPLOY, None)


@pytest.mark.parametrize(
    ("workflow", "producer", "error"),
    [("prices", "nope", ProducerNotFoundError), ("nope", "fast", WorkflowNotFoundError)],
)
def test_a_failed_pause_records_nothing(
    engine: Engine,
    redis_client: redis.Redis,
    workflow: str,
    producer: str,
    error: type[Exception],
) -> None:
    clock = Clock(T0)
    make_lifecycle(engine, redis_client, clock).deploy(definition(fast=every("1m")))
    pauses = _pauses(engine, redis_client, clock)
    before = table_dump(engine)
    with pytest.raises(error):
        pauses.pause(workflow, producer, author=ALICE)
    with pytest.raises(error):
        pauses.resume(workflow, producer, author=ALICE)
    assert table_dump(engine) == before


def test_history_retention_bounds_producer_entries(
    engine: Engine, redis_client: redis.Redis
) -> None:
    clock = Clock(T0)
    locks = WorkflowLocks(redis_client, timeout=timedelta(seconds=5), wait=timedelta(seconds=2))
    lifecycle = Lifecycle(engine, locks, now=clock, history_kept=3)
    lifecycle.deploy(definition(fast=every("1m")))
    lifecycle.deploy({**definition(fast=every("1m")), "name": "other"})
    pauses = _pauses(engine, redis_client, clock, keep=3)
    for n in range(3):
        pauses.pause("prices", "fast", author=ChangeAuthor(f"op{n}"))
        pauses.resume("prices", "fast", author=ChangeAuthor(f"op{n}"))
    assert [(e.action.value, e.actor) for e in _entries(engine)] == [
        ("resume_producer", "op1"),
        ("pause_producer", "op2"),
        ("resume_producer", "op2"),
    ]
    assert _summary(_entries(engine, "other")) == [(1, "deploy", None, "unknown")]
    # The next workflow-wide change still takes the next version (the newest is kept).
    assert lifecycle.pause("prices").version == 2
    assert [e.version for e in _entries(engine)] == [1, 1, 2]


def test_an_auto_pause_after_n_failures_is_in_the_history(
    env: dict[str, str], engine: Engine, tmp_path: Path
) -> None:
    """A real worker runs a failing producer until `pause_after_failures` pauses it; the pause
    is one history entry, by `auto-pause`, naming the failure count and the last error."""
    fragile = {
        "run": "demo.fail",
        "params": {"message": "upstream <down>\x1b[31m"},
        "interval": "1s",
        "pause_after_failures": 3,
    }
    with running_worker(env, tmp_path), running_beat(env, tmp_path):
        deploy(env, {"name": "fragile", "producers": {"fragile": fragile, "ok": every("1h")}})
        wait_until(
            lambda: any(e.action == ChangeAction.AUTO_PAUSE for e in _entries(engine, "fragile")),
            30,
            "the auto-pause entry",
        )
    entries = _entries(engine, "fragile")
    assert _summary(entries) == [
        (1, "deploy", None, "unknown"),
        (1, "auto_pause", "fragile", "auto-pause"),
    ]
    auto = entries[1]
    assert auto.note is not None
    assert auto.note.startswith("3 consecutive failed slots (pause_after_failures: 3); last: ")
    assert "upstream <down>" in auto.note and "\x1b" not in auto.note  # escaped
    assert auto.diff == {"status": {"old": "active", "new": "paused"}}
    client = Drumline(Settings.from_env(env), engine=engine)
    [row] = [p.schedule for p in client.status("fragile") if p.schedule.producer_name == "fragile"]
    assert row.paused and row.consecutive_failures == 3
    assert (auto.changed_at, auto.note) == (row.paused_at, row.pause_note)
    shown = CliRunner().invoke(cli, ["history", "fragile", "--json"], env=env)
    newest = json.loads(shown.output)["changes"][0]
    assert (newest["action"], newest["producer"], newest["actor"]) == (
        "auto_pause",
        "fragile",
        "auto-pause",
    )

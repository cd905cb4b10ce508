"""Pausing one producer (or a workflow) with a note: who, when and why are stored and shown;
resuming moves its passed next run on and records the paused slots as one ledger entry."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import redis
from click.testing import CliRunner
from sqlalchemy import Engine

from models.change_store import MAX_NOTE_CHARS, ChangeAuthor
from models.errors import LifecycleError, ProducerNotFoundError
from models.vocabulary import SlotFate
from tests.clock import Clock
from tests.ledger_checks import ledger_rows
from tests.test_lifecycle import definition, every, make_lifecycle
from workers.cli.main import cli
from workers.services.locks import WorkflowLocks
from workers.services.producer_pause import ProducerPauses
from workers.tasks.message_contracts import CONTRACTS

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


def _pauses(engine: Engine, client: redis.Redis, clock: Clock) -> ProducerPauses:
    locks = WorkflowLocks(client, timeout=timedelta(seconds=5), wait=timedelta(seconds=2))
    return ProducerPauses(engine, locks, now=clock)


def test_one_producer_is_paused_with_a_note_and_resumed_from_its_next_slot(
    engine: Engine, redis_client: redis.Redis, db_url: str
) -> None:
    clock = Clock(T0)
    lifecycle = make_lifecycle(engine, redis_client, clock)
    lifecycle.deploy(definition(fast=every("1m"), slow=every("1h")))
    pauses = _pauses(engine, redis_client, clock)
    summary = pauses.pause("prices", "fast", author=ChangeAuthor("alice", "vendor maintenance"))
    assert (summary.status, summary.changes.changed) == ("paused", ["fast"])
    rows = {row.producer_name: row for row in lifecycle.schedules.list()}
    assert (rows["fast"].paused, rows["slow"].paused) == (True, False)
    assert (rows["fast"].paused_by, rows["fast"].pause_note) == ("alice", "vendor maintenance")

    env = {"DRUMLINE_DATABASE_URL": db_url}
    status = CliRunner().invoke(cli, ["status", "prices", "--json"], env=env)
    producers = {p["name"]: p for p in json.loads(status.output)["producers"]}
    assert producers["fast"]["paused_by"] == "alice"
    assert producers["fast"]["pause_note"] == "vendor maintenance"
    assert producers["slow"]["paused_by"] is None
    table = CliRunner().invoke(cli, ["status", "prices"], env=env).output
    assert "paused by alice at 2026-03-01 12:00:00Z: vendor" in table

    clock.now = T0 + 5 * MINUTE + timedelta(seconds=30)
    resumed = pauses.resume("prices", "fast")
    assert resumed.rescheduled == ("fast",)
    row = lifecycle.schedules.get(rows["fast"].workflow_id, "fast")
    assert row is not None and not row.paused and row.paused_by is None
    assert row.next_run_at == T0 + 6 * MINUTE
    [paused] = ledger_rows(engine, row.workflow_id, "fast")
    assert (paused.slot, paused.range_end, paused.slot_count, paused.outcome) == (
        T0 + MINUTE,
        T0 + 6 * MINUTE,
        5,
        SlotFate.PAUSED,
    )
    assert "vendor maintenance" in paused.reason


def test_a_workflow_pause_records_who_and_why_on_every_producer(
    engine: Engine, redis_client: redis.Redis
) -> None:
    clock = Clock(T0)
    lifecycle = make_lifecycle(engine, redis_client, clock)
    lifecycle.deploy(definition(fast=every("1m"), slow=every("1h")))
    lifecycle.pause("prices", author=ChangeAuthor("bob", "deploy freeze"))
    rows = lifecycle.schedules.list()
    assert {(r.paused_by, r.pause_note) for r in rows} == {("bob", "deploy freeze")}
    with pytest.raises(LifecycleError, match="resume the workflow"):
        _pauses(engine, redis_client, clock).resume("prices", "fast")
    lifecycle.resume("prices")
    assert {(r.paused, r.paused_by, r.pause_note) for r in lifecycle.schedules.list()} == {
        (False, None, None)
    }


def test_an_unknown_producer_is_refused_naming_it(
    engine: Engine, redis_client: redis.Redis
) -> None:
    clock = Clock(T0)
    make_lifecycle(engine, redis_client, clock).deploy(definition(fast=every("1m")))
    with pytest.raises(ProducerNotFoundError, match="has no producer 'nope'"):
        _pauses(engine, redis_client, clock).pause("prices", "nope", author=ChangeAuthor("a"))


def test_the_pause_messages_are_bounded() -> None:
    contract = CONTRACTS["drumline.pause_producer"]
    fields = {"name": "prices", "producer": "fast", "actor": "a@host"}
    ok = contract.arguments.model_validate({**fields, "note": "x" * MAX_NOTE_CHARS})
    assert ok is not None
    with pytest.raises(ValueError, match=f"at most {MAX_NOTE_CHARS}"):
        contract.arguments.model_validate({**fields, "note": "x" * (MAX_NOTE_CHARS + 1)})
    with pytest.raises(ValueError):
        contract.arguments.model_validate({**fields, "producer": "../x"})
    with pytest.raises(ValueError, match="a note needs an actor"):
        contract.arguments.model_validate({"name": "prices", "producer": "fast", "note": "x"})


def test_a_too_long_note_is_refused_by_the_cli_before_anything_is_sent() -> None:
    note = "x" * (MAX_NOTE_CHARS + 1)
    result = CliRunner().invoke(cli, ["pause", "prices", "--producer", "fast", "--note", note])
    assert result.exit_code == 2 and "--note" in result.output

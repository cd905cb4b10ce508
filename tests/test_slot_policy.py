"""Slot policies in workflow files: validated with errors naming the field, stored, shown."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine

from models.definitions import parse_definition
from models.errors import DefinitionError
from models.schedule_store import ProducerScheduleStore
from models.slot_policy import RetryPolicy, SlotPolicy
from models.vocabulary import CatchupPolicy, OverlapPolicy
from tests.databases import new_workflow, schedule_spec
from workers.cli import live_view
from workers.cli.validate_command import validate

EVERY_POLICY: dict[str, Any] = {
    "run": "demo.noop",
    "interval": "1m",
    "overlap": "buffer_one",
    "catchup": "all",
    "catchup_window": "10m",
    "start_deadline": "30s",
    "retries": {"max": 3, "backoff": "1s", "max_backoff": "5s"},
    "pause_after_failures": 4,
}


def _definition(**producer: Any) -> dict[str, Any]:
    return {"name": "pol", "producers": {"p": producer}}


def test_every_policy_is_read_and_round_trips_through_its_stored_json() -> None:
    policy = parse_definition(_definition(**EVERY_POLICY)).producers["p"].slot_policy
    assert policy == SlotPolicy(
        overlap=OverlapPolicy.BUFFER_ONE,
        catchup=CatchupPolicy.ALL,
        catchup_window=timedelta(minutes=10),
        start_deadline=timedelta(seconds=30),
        retries=RetryPolicy(3, timedelta(seconds=1), timedelta(seconds=5)),
        pause_after_failures=4,
    )
    assert SlotPolicy.from_json(policy.to_json()) == policy
    assert policy.describe() == (
        "overlap buffer_one, catchup all within 10m, start deadline 30s,"
        " retries 3 (backoff 1s, max 5s), pause after 4 failures"
    )


def test_allow_takes_max_concurrent() -> None:
    definition = _definition(run="demo.noop", interval="1m", overlap="allow", max_concurrent=3)
    policy = parse_definition(definition).producers["p"].slot_policy
    assert (policy.overlap, policy.max_concurrent) == (OverlapPolicy.ALLOW, 3)
    assert policy.describe() == "overlap allow (max 3), catchup latest"


def test_the_defaults_are_stored_as_nothing() -> None:
    policy = parse_definition(_definition(run="demo.noop", interval="1m")).producers["p"]
    assert policy.slot_policy == SlotPolicy() and SlotPolicy().to_json() == {}
    assert SlotPolicy.from_json({}) == SlotPolicy()


@pytest.mark.parametrize(
    ("fields", "path", "message"),
    [
        ({"overlap": "sometimes"}, "overlap", "'skip', 'buffer_one' or 'allow'"),
        ({"catchup": "some"}, "catchup", "'latest', 'all' or 'none'"),
        ({"max_concurrent": 2}, "max_concurrent", "applies only with overlap: allow"),
        ({"overlap": "allow", "max_concurrent": 0}, "max_concurrent", "greater than or equal"),
        ({"overlap": "allow", "max_concurrent": 101}, "max_concurrent", "less than or equal"),
        ({"catchup_window": "soon"}, "catchup_window", "duration 'soon' is not understood"),
        ({"start_deadline": "0s"}, "start_deadline", "zero"),
        ({"retries": 3}, "retries", "must be a mapping"),
        ({"retries": {"max": -1}}, "retries.max", "greater than or equal to 0"),
        ({"retries": {"max": 1, "tries": 2}}, "retries.tries", "is not a known field"),
        (
            {"retries": {"max": 1, "backoff": "1m", "max_backoff": "5s"}},
            "retries.backoff",
            "backoff 1m is longer than max_backoff 5s",
        ),
        ({"overlap": "allow", "retries": {"max": 1}}, "retries", "need overlap skip"),
        ({"pause_after_failures": 0}, "pause_after_failures", "greater than or equal to 1"),
        ({"pause_after_failures": True}, "pause_after_failures", "integer"),
        ({"catchup": None}, "catchup", ""),
    ],
)
def test_a_bad_policy_is_refused_naming_its_field(
    fields: dict[str, Any], path: str, message: str
) -> None:
    with pytest.raises(DefinitionError) as caught:
        parse_definition(_definition(run="demo.noop", interval="1m", **fields), source="f.yaml")
    problems = [(p.path, p.message) for p in caught.value.problems]
    assert any(p == f"producers.p.{path}" and message in m for p, m in problems), problems


def test_validate_shows_the_policies_in_words_and_json(tmp_path: Path) -> None:
    path = tmp_path / "pol.json"
    path.write_text(json.dumps(_definition(**EVERY_POLICY)))
    text = CliRunner().invoke(validate, [str(path), "--next", "1"])
    assert text.exit_code == 0, text.output
    assert "policy: overlap buffer_one, catchup all within 10m" in text.output
    data = json.loads(CliRunner().invoke(validate, [str(path), "--json"]).output)
    [producer] = data["workflows"][0]["producers"]
    assert producer["policies"]["retries"] == {"max": 3, "backoff": 1.0, "max_backoff": 5.0}


def test_the_live_view_shows_policies_and_who_paused_a_producer(engine: Engine) -> None:
    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    workflow = new_workflow(engine, "shop", {}, now=now)
    store = ProducerScheduleStore(engine)
    policy = {"overlap": "buffer_one", "pause_after_failures": 3}
    store.upsert(schedule_spec(workflow.id, "poll", next_run_at=now, policy=policy), now=now)
    store.upsert(schedule_spec(workflow.id, "plain", next_run_at=now), now=now)
    store.set_paused(workflow.id, True, producer_name="poll", by="auto-pause", note="x", now=now)
    views = {view.producer: view for view in live_view.snapshot(engine, now)}
    assert views["poll"].schedule == (
        "every 30s; overlap buffer_one, catchup latest, pause after 3 failures"
    )
    assert views["plain"].schedule == "every 30s"  # the defaults go without saying
    assert live_view.next_run(views["poll"], now) == "paused (auto-pause)"
    assert live_view.next_run(views["plain"], now) == "due"

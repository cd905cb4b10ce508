"""workers/services/lifecycle.py in-process, against real Redis and real SQLite and PostgreSQL."""

from __future__ import annotations

import copy
import json
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
from sqlalchemy import Engine, update

from models.claims import BeatClaims
from models.errors import (
    InvalidDefinitionError,
    LifecycleError,
    VersionConflictError,
    WorkflowBusyError,
    WorkflowNotFoundError,
)
from models.records import ScheduleRecord
from models.run_path import RunPath
from models.schedule_store import ProducerScheduleStore
from models.tables import producer_schedules
from models.workflow_store import WorkflowStore
from tests.clock import Clock
from tests.databases import table_dump
from workers.services.lifecycle import Lifecycle
from workers.services.locks import WorkflowLocks, lock_key

NOW = datetime(2026, 3, 2, 12, 0, 0, tzinfo=UTC)
LEASE = timedelta(minutes=1)


def definition(**producers: dict[str, Any]) -> dict[str, Any]:
    return {"name": "prices", "description": "test workflow", "producers": producers}


def every(interval: str, **extra: Any) -> dict[str, Any]:
    return {"run": "demo.noop", "interval": interval, **extra}


BASE = definition(
    fast=every("30s", params={"symbol": "EURUSD"}),
    daily={"run": "demo.counter", "cron": "30 9 * * *", "timezone": "Europe/Paris"},
    manual={"run": "demo.noop"},
)


def make_lifecycle(
    engine: Engine,
    client: redis.Redis,
    clock: Callable[[], datetime],
    *,
    timeout: float = 5,
    wait: float = 2,
) -> Lifecycle:
    locks = WorkflowLocks(client, timeout=timedelta(seconds=timeout), wait=timedelta(seconds=wait))
    return Lifecycle(engine, locks, now=clock)


def after_first_reading(action: Callable[[], None], clock: Clock) -> Callable[[], datetime]:
    """`clock`, running `action` before its first reading. A change reads its clock first just
    after reading the workflow's version, before its transaction: `action` runs in between."""
    pending = [action]

    def now() -> datetime:
        while pending:
            pending.pop()()
        return clock()

    return now


@pytest.fixture
def clock() -> Clock:
    return Clock(NOW)


@pytest.fixture
def lifecycle(engine: Engine, redis_client: redis.Redis, clock: Clock) -> Lifecycle:
    return make_lifecycle(engine, redis_client, clock)


def rows(engine: Engine, workflow: str = "prices") -> dict[str, ScheduleRecord]:
    record = WorkflowStore(engine).get(workflow)
    assert record is not None
    return {row.producer_name: row for row in ProducerScheduleStore(engine).list(record.id)}


def claimable(engine: Engine, at: datetime) -> list[str]:
    """The producers beat could claim at `at` (claims them, as beat would)."""
    slots = BeatClaims(engine).claim_due(now=at, lease=LEASE, limit=100)
    return sorted(slot.producer_name for slot in slots)


def give_state(engine: Engine, row: ScheduleRecord, state: dict[str, Any]) -> None:
    """Simulate a finished run: last run, status and carried state on the row."""
    with engine.begin() as conn:
        conn.execute(
            update(producer_schedules)
            .where(producer_schedules.c.id == row.id)
            .values(last_run_at=NOW, last_status="succeeded", state=state, updated_at=NOW)
        )


# --- deploy ------------------------------------------------------------------------------------


def test_deploy_creates_rows_with_their_next_runs(lifecycle: Lifecycle, engine: Engine) -> None:
    summary = lifecycle.deploy(BASE).to_json()
    assert summary == {
        "workflow": "prices",
        "version": 1,
        "added": ["daily", "fast", "manual"],
        "changed": [],
        "removed": [],
        "unchanged": [],
        "noop": False,
    }
    found = rows(engine)
    assert found["fast"].next_run_at == NOW + timedelta(seconds=30)
    assert (found["fast"].schedule_type, found["fast"].params) == ("interval", {"symbol": "EURUSD"})
    # 09:30 in Paris (UTC+1 in March) on the next day.
    assert found["daily"].next_run_at == datetime(2026, 3, 3, 8, 30, tzinfo=UTC)
    assert (found["daily"].schedule_type, found["daily"].timezone) == ("cron", "Europe/Paris")
    manual = found["manual"]
    assert (manual.schedule_type, manual.schedule_value, manual.timezone) == ("manual", "", "UTC")
    assert manual.next_run_at is None
    assert not any(row.paused for row in found.values())
    workflow = WorkflowStore(engine).get("prices")
    assert workflow is not None
    assert (workflow.status, workflow.definition["name"]) == ("active", "prices")


def test_identical_redeploy_changes_nothing(
    lifecycle: Lifecycle, engine: Engine, clock: Clock
) -> None:
    lifecycle.deploy(BASE)
    before = table_dump(engine)
    clock.now = NOW + timedelta(minutes=5)
    summary = lifecycle.deploy(copy.deepcopy(BASE)).to_json()
    assert table_dump(engine) == before
    assert summary["noop"] is True
    assert summary["version"] == 1
    assert summary["unchanged"] == ["daily", "fast", "manual"]
    assert summary["added"] == summary["changed"] == summary["removed"] == []


def test_changing_one_interval_recomputes_only_that_producer(
    lifecycle: Lifecycle, engine: Engine, clock: Clock
) -> None:
    lifecycle.deploy(BASE)
    before = rows(engine)
    give_state(engine, before["daily"], {"cursor": 7})
    give_state(engine, before["fast"], {"cursor": 3})
    assert claimable(engine, NOW + timedelta(seconds=30)) == ["fast"]  # a run is in flight
    before = rows(engine)
    clock.now = NOW + timedelta(seconds=40)
    changed = definition(**{**BASE["producers"], "fast": every("5m", params={"symbol": "EURUSD"})})

    summary = lifecycle.deploy(changed).to_json()

    assert (summary["version"], summary["changed"]) == (2, ["fast"])
    assert summary["unchanged"] == ["daily", "manual"]
    after = rows(engine)
    assert after["daily"] == before["daily"]
    assert after["manual"] == before["manual"]
    fast = after["fast"]
    assert (fast.schedule_value, fast.next_run_at) == ("5m", clock.now + timedelta(minutes=5))
    # The in-flight run is superseded: its claim is gone, the carried state is kept.
    assert (fast.claim_token, fast.claimed_until) == (None, None)
    assert fast.state == {"cursor": 3}


def test_changing_a_time_zone_is_a_schedule_change(lifecycle: Lifecycle, engine: Engine) -> None:
    lifecycle.deploy(BASE)
    producers = {**BASE["producers"], "daily": {**BASE["producers"]["daily"], "timezone": "UTC"}}
    summary = lifecycle.deploy(definition(**producers)).to_json()
    assert summary["changed"] == ["daily"]
    assert rows(engine)["daily"].next_run_at == datetime(2026, 3, 3, 9, 30, tzinfo=UTC)


def test_config_only_change_keeps_next_run_claim_and_state(
    lifecycle: Lifecycle, engine: Engine, clock: Clock
) -> None:
    lifecycle.deploy(BASE)
    give_state(engine, rows(engine)["fast"], {"cursor": 3})
    assert claimable(engine, NOW + timedelta(seconds=30)) == ["fast"]
    before = rows(engine)
    clock.now = NOW + timedelta(seconds=31)
    fast = every("30s", params={"symbol": "GBPUSD"}, run="demo.counter")

    summary = lifecycle.deploy(definition(**{**BASE["producers"], "fast": fast})).to_json()

    assert (summary["changed"], summary["unchanged"]) == (["fast"], ["daily", "manual"])
    old, new = before["fast"], rows(engine)["fast"]
    assert (new.run, new.params) == ("demo.counter", {"symbol": "GBPUSD"})
    assert new.next_run_at == old.next_run_at
    assert new.claim_token is not None
    assert (new.claim_token, new.claimed_until, new.state) == (
        old.claim_token,
        old.claimed_until,
        old.state,
    )


def test_removing_a_producer_deletes_only_its_row(lifecycle: Lifecycle, engine: Engine) -> None:
    lifecycle.deploy(BASE)
    before = rows(engine)
    remaining = {k: v for k, v in BASE["producers"].items() if k != "daily"}
    summary = lifecycle.deploy(definition(**remaining)).to_json()
    assert (summary["removed"], summary["unchanged"]) == (["daily"], ["fast", "manual"])
    after = rows(engine)
    assert sorted(after) == ["fast", "manual"]
    assert after["fast"] == before["fast"]
    assert after["manual"] == before["manual"]


# --- pause, resume, delete ---------------------------------------------------------------------


def test_pause_makes_nothing_claimable_and_pausing_twice_is_a_noop(
    lifecycle: Lifecycle, engine: Engine
) -> None:
    lifecycle.deploy(BASE)
    summary = lifecycle.pause("prices").to_json()
    assert (summary["status"], summary["version"], summary["noop"]) == ("paused", 2, False)
    assert claimable(engine, NOW + timedelta(days=30)) == []
    before = table_dump(engine)
    again = lifecycle.pause("prices").to_json()
    assert (again["status"], again["version"], again["noop"]) == ("paused", 2, True)
    assert table_dump(engine) == before


def test_deploying_to_a_paused_workflow_keeps_it_paused(
    lifecycle: Lifecycle, engine: Engine
) -> None:
    lifecycle.deploy(BASE)
    lifecycle.pause("prices")
    summary = lifecycle.deploy(definition(**BASE["producers"], extra=every("10s"))).to_json()
    assert summary["added"] == ["extra"]
    assert all(row.paused for row in rows(engine).values())
    assert WorkflowStore(engine).get("prices").status == "paused"  # type: ignore[union-attr]
    assert claimable(engine, NOW + timedelta(days=30)) == []


def test_resume_moves_missed_runs_to_the_next_slot_without_a_burst(
    lifecycle: Lifecycle, engine: Engine, clock: Clock
) -> None:
    lifecycle.deploy(BASE)
    lifecycle.pause("prices")
    clock.now = NOW + timedelta(days=2, seconds=5)

    summary = lifecycle.resume("prices").to_json()

    assert (summary["status"], summary["version"]) == ("active", 3)
    assert summary["rescheduled"] == ["daily", "fast"]
    found = rows(engine)
    # Interval: still on the 30 s grid of the first deploy, first slot after now.
    assert found["fast"].next_run_at == clock.now + timedelta(seconds=25)
    assert found["daily"].next_run_at == datetime(2026, 3, 5, 8, 30, tzinfo=UTC)
    assert found["manual"].next_run_at is None
    assert not any(row.paused for row in found.values())
    assert claimable(engine, clock.now) == []
    assert claimable(engine, clock.now + timedelta(seconds=25)) == ["fast"]
    assert lifecycle.resume("prices").to_json()["noop"] is True


def test_resume_drops_a_claim_on_a_slot_that_passed_while_paused(
    lifecycle: Lifecycle, engine: Engine, clock: Clock
) -> None:
    """The message sent for the old slot is stale after resume; its claim (here one with a lease
    longer than the pause) must not hold the new slot back."""
    lifecycle.deploy(BASE)
    first_slot = rows(engine)["fast"].next_run_at
    assert first_slot is not None
    claimed = BeatClaims(engine).claim_due(now=first_slot, lease=timedelta(days=30), limit=100)
    assert "fast" in [slot.producer_name for slot in claimed]
    lifecycle.pause("prices")
    clock.now = NOW + timedelta(days=2, seconds=5)

    lifecycle.resume("prices")

    assert rows(engine)["fast"].claim_token is None
    assert claimable(engine, clock.now + timedelta(seconds=25)) == ["fast"]


def test_delete_removes_the_workflow_its_schedules_and_runs(
    lifecycle: Lifecycle, engine: Engine
) -> None:
    lifecycle.deploy(BASE)
    lifecycle.deploy({**BASE, "name": "other"})
    other_before = rows(engine, "other")
    workflow_id = WorkflowStore(engine).get("prices").id  # type: ignore[union-attr]
    RunPath(engine).begin_run(
        workflow_id=workflow_id,
        producer_name="fast",
        scheduled_for=NOW,
        trigger="schedule",
        task_id="t1",
        now=NOW,
    )
    assert len(table_dump(engine)["producer_runs"]) == 1

    summary = lifecycle.delete("prices").to_json()

    assert summary["deleted"] is True
    assert summary["removed"] == ["daily", "fast", "manual"]
    assert table_dump(engine)["producer_runs"] == []
    assert WorkflowStore(engine).get("prices") is None
    assert ProducerScheduleStore(engine).list(workflow_id) == []
    assert rows(engine, "other") == other_before


@pytest.mark.parametrize("operation", ["pause", "resume", "delete"])
def test_unknown_workflow_is_not_found(lifecycle: Lifecycle, operation: str) -> None:
    with pytest.raises(WorkflowNotFoundError) as caught:
        getattr(lifecycle, operation)("nope")
    assert str(caught.value) == "workflow 'nope' does not exist"
    assert (caught.value.code, caught.value.details) == ("not_found", {"workflow": "nope"})


# --- locks and fencing -------------------------------------------------------------------------


@pytest.mark.parametrize("existing", [False, True], ids=["create", "update"])
def test_a_change_whose_lock_expired_is_fenced_out(
    engine: Engine,
    redis_client: redis.Redis,
    clock: Clock,
    existing: bool,
    caplog: pytest.LogCaptureFixture,
) -> None:
    fast = make_lifecycle(engine, redis_client, clock, timeout=5, wait=0)
    if existing:
        fast.deploy(BASE)
    mine = definition(mine=every("1m"))
    theirs = definition(theirs=every("2m"), fast=every("1s"))

    def meanwhile() -> None:
        time.sleep(1.3)  # the slow change's lock expires...
        fast.deploy(theirs)  # ...and another change takes the lock and commits

    slow = make_lifecycle(
        engine, redis_client, after_first_reading(meanwhile, clock), timeout=1, wait=0
    )
    with pytest.raises(VersionConflictError) as caught:
        slow.deploy(mine)

    assert caught.value.code == "conflict"
    assert "prices" in str(caught.value)
    workflow = WorkflowStore(engine).get("prices")
    assert workflow is not None
    assert workflow.version == (2 if existing else 1)
    assert workflow.definition["producers"].keys() == {"theirs", "fast"}
    found = rows(engine)
    assert sorted(found) == ["fast", "theirs"]
    assert (found["fast"].schedule_value, found["theirs"].schedule_value) == ("1s", "2m")
    assert "expired before the change finished" in caplog.text


def test_a_held_lock_makes_a_change_busy_and_writes_nothing(
    engine: Engine, redis_client: redis.Redis, clock: Clock, lifecycle: Lifecycle
) -> None:
    lifecycle.deploy(BASE)
    before = table_dump(engine)
    impatient = make_lifecycle(engine, redis_client, clock, wait=0.3)
    holder = WorkflowLocks(redis_client, timeout=timedelta(seconds=30), wait=timedelta(0))
    with holder.hold("prices"):
        assert redis_client.exists(lock_key("prices"))
        for attempt in (
            lambda: impatient.deploy(definition(fast=every("1m"))),
            lambda: impatient.pause("prices"),
            lambda: impatient.delete("prices"),
        ):
            with pytest.raises(WorkflowBusyError) as caught:
                attempt()
            assert str(caught.value) == (
                "workflow 'prices' is busy: another change holds its lock; retry"
            )
    assert not redis_client.exists(lock_key("prices"))
    assert table_dump(engine) == before


def test_lifecycle_errors_survive_a_json_round_trip() -> None:
    """Celery stores (type, module, args) as JSON and rebuilds the error as `cls(*args)`."""
    error = VersionConflictError("workflow 'x' changed", {"workflow": "x", "read_version": 3})
    rebuilt = VersionConflictError(*json.loads(json.dumps(error.args)))
    assert isinstance(rebuilt, LifecycleError)
    assert (str(rebuilt), rebuilt.code, rebuilt.details) == (
        "workflow 'x' changed",
        "conflict",
        {"workflow": "x", "read_version": 3},
    )


# --- invalid definitions -----------------------------------------------------------------------

_DROP = object()


def one(**fields: Any) -> dict[str, Any]:
    """The workflow `prices` with one producer `p`, its fields changed (`_DROP` removes one)."""
    producer = {"run": "demo.noop", "interval": "30s", **fields}
    return {
        "name": "prices",
        "producers": {"p": {k: v for k, v in producer.items() if v is not _DROP}},
    }


def top(**fields: Any) -> dict[str, Any]:
    data = {"name": "prices", "producers": {"p": {"run": "demo.noop", "interval": "30s"}}, **fields}
    return {k: v for k, v in data.items() if v is not _DROP}


def named(producer_name: str) -> dict[str, Any]:
    return top(producers={producer_name: {"run": "demo.noop", "interval": "30s"}})


MANUAL = {"interval": _DROP}
INVALID: list[tuple[str, Any, str]] = [
    ("cron-garbage", one(cron="not a cron", **MANUAL), "producers.p.cron"),
    ("cron-3-fields", one(cron="* * *", **MANUAL), "producers.p.cron"),
    ("cron-7-fields", one(cron="* * * * * * *", **MANUAL), "producers.p.cron"),
    ("cron-minute-61", one(cron="61 * * * *", **MANUAL), "producers.p.cron"),
    ("cron-hour-24", one(cron="0 24 * * *", **MANUAL), "producers.p.cron"),
    ("cron-month-13", one(cron="0 0 1 13 *", **MANUAL), "producers.p.cron"),
    ("cron-weekday-9", one(cron="0 0 * * 9", **MANUAL), "producers.p.cron"),
    ("cron-day-32", one(cron="0 0 32 * *", **MANUAL), "producers.p.cron"),
    ("cron-unknown-alias", one(cron="@fortnightly", **MANUAL), "producers.p.cron"),
    ("cron-empty", one(cron="", **MANUAL), "producers.p.cron"),
    ("cron-number", one(cron=5, **MANUAL), "producers.p.cron"),
    ("cron-too-long", one(cron="*" * 201, **MANUAL), "producers.p.cron"),
    ("interval-no-unit", one(interval="30"), "producers.p.interval"),
    ("interval-zero", one(interval="0s"), "producers.p.interval"),
    ("interval-negative", one(interval="-5m"), "producers.p.interval"),
    ("interval-unknown-unit", one(interval="5x"), "producers.p.interval"),
    ("interval-units-out-of-order", one(interval="30s5m"), "producers.p.interval"),
    ("interval-over-a-year", one(interval="400d"), "producers.p.interval"),
    ("interval-empty", one(interval=""), "producers.p.interval"),
    ("interval-number", one(interval=30), "producers.p.interval"),
    ("interval-list", one(interval=["30s"]), "producers.p.interval"),
    ("interval-boolean", one(interval=True), "producers.p.interval"),
    ("interval-and-cron", one(cron="* * * * *"), "producers.p"),
    (
        "timezone-unknown",
        one(cron="0 9 * * *", timezone="Mars/Olympus", **MANUAL),
        "producers.p.timezone",
    ),
    ("timezone-on-interval", one(timezone="UTC"), "producers.p.timezone"),
    ("timezone-without-schedule", one(timezone="UTC", **MANUAL), "producers.p.timezone"),
    ("timezone-empty", one(cron="0 9 * * *", timezone="", **MANUAL), "producers.p.timezone"),
    (
        "timezone-too-long",
        one(cron="0 9 * * *", timezone="A" * 65, **MANUAL),
        "producers.p.timezone",
    ),
    ("timezone-number", one(cron="0 9 * * *", timezone=1, **MANUAL), "producers.p.timezone"),
    ("run-unregistered", one(run="demo.nope"), "producers.p.run"),
    ("run-bad-characters", one(run="Demo Noop"), "producers.p.run"),
    ("run-missing", one(run=_DROP), "producers.p.run"),
    ("run-number", one(run=5), "producers.p.run"),
    ("run-empty", one(run=""), "producers.p.run"),
    ("run-too-long", one(run="a" * 201), "producers.p.run"),
    ("run-a-module-path", one(run="os.system"), "producers.p.run"),
    ("params-list", one(params=[1, 2]), "producers.p.params"),
    ("params-string", one(params="symbol=EURUSD"), "producers.p.params"),
    ("timeout-no-unit", one(timeout="10"), "producers.p.timeout"),
    ("timeout-number", one(timeout=10), "producers.p.timeout"),
    ("timeout-over-a-day", one(timeout="2d"), "producers.p.timeout"),
    ("timeout-zero", one(timeout="0s"), "producers.p.timeout"),
    ("producer-unknown-key", one(retries=3), "producers.p.retries"),
    ("producer-a-string", top(producers={"p": "demo.noop"}), "producers.p"),
    ("producer-null", top(producers={"p": None}), "producers.p"),
    ("producer-a-list", top(producers={"p": ["demo.noop"]}), "producers.p"),
    ("producer-name-uppercase", named("Poll"), "producers.Poll"),
    ("producer-name-space", named("my producer"), "producers.my producer"),
    ("producer-name-too-long", named("a" * 64), "producers." + "a" * 64),
    ("producer-name-leading-dash", named("-p"), "producers.-p"),
    ("producer-name-dot", named("a.b"), "producers.a.b"),
    ("producers-empty", top(producers={}), "producers"),
    ("producers-missing", top(producers=_DROP), "producers"),
    ("producers-a-list", top(producers=[{"run": "demo.noop"}]), "producers"),
    ("producers-null", top(producers=None), "producers"),
    ("name-missing", top(name=_DROP), "name"),
    ("name-uppercase", top(name="Prices"), "name"),
    ("name-slash", top(name="a/b"), "name"),
    ("name-too-long", top(name="a" * 64), "name"),
    ("name-empty", top(name=""), "name"),
    ("name-number", top(name=7), "name"),
    ("unknown-top-level-key", top(owner="team"), "owner"),
    ("version-is-not-settable", top(version=2), "version"),
    ("description-number", top(description=5), "description"),
    ("description-too-long", top(description="x" * 2001), "description"),
    ("not-a-mapping-list", [top()], ""),
    ("not-a-mapping-string", "name: prices", ""),
    ("not-a-mapping-null", None, ""),
    ("oversized", one(params={"blob": "x" * (1024 * 1024)}), ""),
    (
        "one-bad-producer-among-good-ones",
        top(
            producers={
                "a": {"run": "demo.noop", "interval": "1m"},
                "b": {"run": "demo.noop", "cron": "0 25 * * *"},
            }
        ),
        "producers.b.cron",
    ),
]


def test_invalid_definitions_are_rejected_naming_the_field_and_write_nothing(
    lifecycle: Lifecycle, engine: Engine
) -> None:
    """All cases in one test: a fresh database per case would make this minutes, not seconds."""
    assert len(INVALID) >= 50
    lifecycle.deploy(BASE)
    before = table_dump(engine)
    wrong: list[str] = []
    for case, data, path in INVALID:
        with pytest.raises(InvalidDefinitionError) as caught:
            lifecycle.deploy(data)
        error = caught.value
        paths = [problem["path"] for problem in error.details["errors"]]
        message = str(error)
        if path not in paths or "invalid definition" not in message or "\n" in message:
            wrong.append(f"{case}: paths {paths}, message {message!r}")
        assert error.code == "invalid"
        assert json.loads(json.dumps(error.args)) == list(error.args)
    assert wrong == []
    assert table_dump(engine) == before


def test_logs_name_the_workflow_and_producers(
    lifecycle: Lifecycle, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="drumline.lifecycle"):
        lifecycle.deploy(BASE)
        lifecycle.pause("prices")
    assert "deployed workflow 'prices' v1: added ['daily', 'fast', 'manual']" in caplog.text
    assert "workflow 'prices' v2 is now paused" in caplog.text


def test_a_timeout_longer_than_the_workers_allow_is_refused(
    engine: Engine, redis_client: redis.Redis, clock: Clock
) -> None:
    locks = WorkflowLocks(redis_client, timeout=timedelta(seconds=5), wait=timedelta(seconds=1))
    strict = Lifecycle(engine, locks, now=clock, max_timeout=timedelta(seconds=40))
    before = table_dump(engine)
    with pytest.raises(InvalidDefinitionError) as caught:
        strict.deploy(definition(slow=every("1m", timeout="2m")))
    [problem] = caught.value.details["errors"]
    assert problem["path"] == "producers.slow.timeout"
    assert "longer than 40s" in problem["message"]
    assert table_dump(engine) == before
    assert strict.deploy(definition(slow=every("1m", timeout="30s"))).to_json()["added"] == ["slow"]

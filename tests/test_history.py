"""The change history and plans of workers/services/lifecycle.py, in-process, against real Redis
and real SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import redis
from sqlalchemy import Engine

from models.change_store import ChangeAuthor, ChangeStore
from models.errors import InvalidAuthorError, VersionConflictError, VersionNotFoundError
from models.vocabulary import ChangeAction
from models.workflow_store import WorkflowStore
from tests.clock import Clock
from tests.databases import table_dump
from tests.test_lifecycle import (
    BASE,
    NOW,
    after_first_reading,
    definition,
    every,
    make_lifecycle,
    rows,
)
from workers.services.lifecycle import Lifecycle, definition_diff
from workers.services.locks import WorkflowLocks
from workers.tasks.message_contracts import RefusedMessage, check_arguments

OPS = ChangeAuthor("ops@build-7", "ticket 42")


@pytest.fixture
def clock() -> Clock:
    return Clock(NOW)


@pytest.fixture
def lifecycle(engine: Engine, redis_client: redis.Redis, clock: Clock) -> Lifecycle:
    return make_lifecycle(engine, redis_client, clock)


def history(engine: Engine, name: str = "prices") -> list[tuple[int, ChangeAction, str]]:
    """(version, action, actor) of each entry, oldest first."""
    return [(e.version, e.action, e.actor) for e in reversed(ChangeStore(engine).list(name, 1000))]


def test_every_change_is_recorded_with_its_author_definition_and_diff(
    lifecycle: Lifecycle, engine: Engine
) -> None:
    lifecycle.deploy(BASE, author=OPS)
    changed = definition(
        fast=every("1m", params={"symbol": "EURUSD"}),
        daily={"run": "demo.counter", "cron": "30 9 * * *", "timezone": "Europe/Paris"},
        extra=every("5m"),
    )
    lifecycle.deploy(changed, author=ChangeAuthor("dev@laptop"))
    lifecycle.deploy(changed, author=OPS)  # no-op: no entry
    lifecycle.pause("prices", author=OPS)
    lifecycle.pause("prices", author=OPS)  # no-op: no entry
    lifecycle.resume("prices")

    assert history(engine) == [
        (1, ChangeAction.DEPLOY, "ops@build-7"),
        (2, ChangeAction.DEPLOY, "dev@laptop"),
        (3, ChangeAction.PAUSE, "ops@build-7"),
        (4, ChangeAction.RESUME, "unknown"),
    ]
    store = ChangeStore(engine)
    first, second = store.get("prices", 1), store.get("prices", 2)
    assert first is not None and second is not None
    assert first.note == "ticket 42" and second.note is None
    workflow = WorkflowStore(engine).get("prices")
    assert workflow is not None and second.definition == workflow.definition
    assert second.diff == {
        "workflow_fields": {},
        "added": ["extra"],
        "changed": {"fast": {"schedule_value": {"old": "30s", "new": "1m"}}},
        "removed": ["manual"],
        "unchanged": ["daily"],
    }
    paused = store.get("prices", 3)
    assert paused is not None and paused.diff == {"status": {"old": "active", "new": "paused"}}


def test_history_survives_delete_and_a_new_workflow_of_the_name_goes_on_from_it(
    lifecycle: Lifecycle, engine: Engine
) -> None:
    lifecycle.deploy(BASE)
    lifecycle.pause("prices")
    deleted = lifecycle.delete("prices", author=OPS)
    assert deleted.version == 3  # the summary names the delete's own version (its entry's)
    assert WorkflowStore(engine).get("prices") is None
    assert history(engine)[-1] == (3, ChangeAction.DELETE, "ops@build-7")
    entry = ChangeStore(engine).get("prices", 3)
    assert entry is not None and entry.diff == {"removed": ["daily", "fast", "manual"]}

    again = lifecycle.deploy(BASE)
    assert again.version == 4
    assert [version for version, _, _ in history(engine)] == [1, 2, 3, 4]


def test_history_keeps_the_newest_entries_of_each_workflow(
    engine: Engine, redis_client: redis.Redis, clock: Clock
) -> None:
    locks = WorkflowLocks(redis_client, timeout=timedelta(seconds=5), wait=timedelta(seconds=2))
    lifecycle = Lifecycle(engine, locks, now=clock, history_kept=3)
    lifecycle.deploy(BASE)
    lifecycle.deploy({**BASE, "name": "other"})
    for _ in range(3):
        lifecycle.pause("prices")
        lifecycle.resume("prices")
    assert [version for version, _, _ in history(engine)] == [5, 6, 7]
    assert [version for version, _, _ in history(engine, "other")] == [1]


def test_a_change_fenced_out_records_nothing(
    engine: Engine, redis_client: redis.Redis, clock: Clock
) -> None:
    make_lifecycle(engine, redis_client, clock).deploy(BASE)

    def another_change_commits() -> None:
        workflows = WorkflowStore(engine)
        current = workflows.get("prices")
        assert current is not None
        assert workflows.update_fenced(current.id, current.version, now=clock()) is not None

    slow = make_lifecycle(engine, redis_client, after_first_reading(another_change_commits, clock))
    with pytest.raises(VersionConflictError):
        slow.deploy(definition(fast=every("1m")))
    assert [version for version, _, _ in history(engine)] == [1]
    assert sorted(rows(engine)) == ["daily", "fast", "manual"]


def test_plan_is_what_deploy_then_does_and_writes_nothing(
    lifecycle: Lifecycle, engine: Engine
) -> None:
    lifecycle.deploy(BASE)
    wanted = definition(
        fast=every("30s", params={"symbol": "GBPUSD"}),  # config only
        daily={"run": "demo.counter", "cron": "0 8 * * *", "timezone": "Europe/Paris"},
        extra=every("5m"),
    )
    before = table_dump(engine)
    plan = lifecycle.plan(wanted)
    assert table_dump(engine) == before
    assert plan.changes.as_dict() == {
        "added": ["extra"],
        "changed": ["daily", "fast"],
        "removed": ["manual"],
        "unchanged": [],
    }
    fields = {diff.producer: dict(diff.fields) for diff in plan.diff.producers}
    assert fields["fast"] == {"params": ({"symbol": "EURUSD"}, {"symbol": "GBPUSD"})}
    assert fields["daily"] == {"schedule_value": ("30 9 * * *", "0 8 * * *")}
    upcoming = plan.upcoming(3)
    assert sorted(upcoming) == ["daily", "extra"]  # fast keeps its next run
    assert [t - plan.now for t in upcoming["extra"]] == [timedelta(minutes=m) for m in (5, 10, 15)]

    summary = lifecycle.deploy(wanted)
    assert summary.changes == plan.changes
    after = rows(engine)
    assert after["extra"].next_run_at == upcoming["extra"][0]
    assert after["daily"].next_run_at == upcoming["daily"][0]
    assert lifecycle.plan(wanted).noop


def test_rollback_deploys_an_old_definition_as_a_new_version(
    lifecycle: Lifecycle, engine: Engine
) -> None:
    lifecycle.deploy(BASE)
    v1 = {name: (r.schedule_value, r.params) for name, r in rows(engine).items()}
    lifecycle.deploy(definition(fast=every("1m"), other=every("2m")))
    plan = lifecycle.plan_rollback("prices", 1)
    assert plan.changes.as_dict()["removed"] == ["other"]

    summary = lifecycle.rollback("prices", 1, author=OPS)

    assert summary.version == 3
    assert {name: (r.schedule_value, r.params) for name, r in rows(engine).items()} == v1
    entry = ChangeStore(engine).get("prices", 3)
    assert entry is not None
    assert (entry.action, entry.diff["rollback_of"], entry.actor) == (
        ChangeAction.ROLLBACK,
        1,
        "ops@build-7",
    )
    with pytest.raises(VersionNotFoundError) as caught:
        lifecycle.rollback("prices", 9)
    assert str(caught.value).startswith("workflow 'prices' has no version 9 in its history")


def test_diff_between_two_versions_uses_the_deploy_diff(lifecycle: Lifecycle) -> None:
    lifecycle.deploy(BASE)
    lifecycle.deploy({**BASE, "description": "new words"})
    one, two = lifecycle.change("prices", 1), lifecycle.change("prices", 2)
    diff = definition_diff(one.definition, two.definition)
    assert diff.to_json()["workflow_fields"] == {
        "description": {"old": "test workflow", "new": "new words"}
    }
    assert diff.names("unchanged") == ["daily", "fast", "manual"]


@pytest.mark.parametrize(
    ("actor", "note", "field"),
    [
        ("", None, "actor"),
        ("a\nb", None, "actor"),
        ("x" * 201, None, "actor"),
        ("ops", "n" * 2001, "note"),
        ("ops", "bad\x00", "note"),
    ],
)
def test_an_author_the_history_cannot_keep_is_refused(
    actor: str, note: str | None, field: str
) -> None:
    with pytest.raises(InvalidAuthorError) as caught:
        ChangeAuthor(actor, note)
    assert str(caught.value).startswith(f"{field} must be")


@pytest.mark.parametrize(
    ("task", "args", "kwargs", "problem"),
    [
        ("drumline.pause_workflow", ["prices"], {"actor": "a\nb"}, "actor must be 1 to 200"),
        ("drumline.pause_workflow", ["prices"], {"note": "why"}, "a note needs an actor"),
        ("drumline.delete_workflow", ["prices"], {"actor": "x" * 201}, "at most 200 characters"),
        ("drumline.rollback_workflow", ["prices", "1"], {}, "version: Input should be a valid"),
        ("drumline.rollback_workflow", ["prices", 0], {}, "greater than or equal to 1"),
        ("drumline.rollback_workflow", ["prices"], {}, "version: Field required"),
    ],
)
def test_the_boundary_refuses_a_bad_author_or_version(
    task: str, args: list[Any], kwargs: dict[str, Any], problem: str
) -> None:
    with pytest.raises(RefusedMessage) as caught:
        check_arguments(task, args, kwargs)
    assert problem in str(caught.value)


def test_the_boundary_accepts_an_author_and_a_rollback() -> None:
    checked = check_arguments(
        "drumline.rollback_workflow", ["prices", 3], {"actor": "ops@host", "note": "é" * 2000}
    )
    assert checked.model_dump() == {
        "name": "prices",
        "version": 3,
        "actor": "ops@host",
        "note": "é" * 2000,
    }

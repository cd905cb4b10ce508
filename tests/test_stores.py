"""The stores against real SQLite and PostgreSQL (each test runs on both)."""

from __future__ import annotations

import itertools
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, TypedDict

import pytest
from sqlalchemy import Engine, func, select, update

from models.claims import BeatClaims
from models.producer_health import due_backlog
from models.records import ScheduleSpec, SlotOutcome
from models.run_path import RunPath
from models.run_store import RunStore
from models.schedule_store import ProducerScheduleStore
from models.tables import producer_runs, producer_schedules
from models.workflow_store import WorkflowStore
from tests.databases import new_workflow, schedule_spec

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
LEASE = timedelta(minutes=1)


class ClaimedSlot(TypedDict):
    """The slot a claim is taken on, as `take_claim` takes it: the workflow's name, and the
    row's next run (NOW, for every `spec` row that did not move)."""

    workflow_name: str
    scheduled_for: datetime


THE_SLOT = ClaimedSlot(workflow_name="prices", scheduled_for=NOW)


class Slot(TypedDict):
    """The keyword arguments naming one run slot, as `RunPath.begin_run` takes them."""

    workflow_id: int
    producer_name: str
    scheduled_for: datetime


def spec(workflow_id: int, name: str = "poll", **changes: Any) -> ScheduleSpec:
    """This module's schedule row: EURUSD params, due at NOW, unless `changes` say otherwise."""
    return schedule_spec(
        workflow_id, name, **{"params": {"symbol": "EURUSD"}, "next_run_at": NOW, **changes}
    )


@pytest.fixture
def workflow_id(engine: Engine) -> int:
    return new_workflow(engine, "prices", {"name": "prices"}, now=NOW).id


# --- workflows ---------------------------------------------------------------------------------


def test_workflow_create_then_update_bumps_version(engine: Engine) -> None:
    store = WorkflowStore(engine)
    first = store.create("prices", {"v": 1}, now=NOW)
    assert first is not None
    assert (first.version, first.status, first.definition) == (1, "active", {"v": 1})
    second = store.update_fenced(
        first.id, first.version, definition={"v": 2}, now=NOW + timedelta(seconds=1)
    )
    assert second is not None
    assert second.id == first.id
    assert (second.version, second.definition) == (2, {"v": 2})
    assert second.created_at == NOW
    assert second.updated_at == NOW + timedelta(seconds=1)
    assert [w.name for w in store.list()] == ["prices"]


def test_workflow_get_list_delete(engine: Engine) -> None:
    store = WorkflowStore(engine)
    assert store.get("missing") is None
    created = new_workflow(engine, "b-flow", {}, now=NOW)
    new_workflow(engine, "a-flow", {}, now=NOW)
    assert store.get("b-flow") == created
    assert [w.name for w in store.list()] == ["a-flow", "b-flow"]
    assert store.delete_fenced(created.id, created.version) is True
    assert store.delete_fenced(created.id, created.version) is False
    assert [w.name for w in store.list()] == ["a-flow"]


def test_workflow_create_refuses_a_taken_name(engine: Engine) -> None:
    store = WorkflowStore(engine)
    assert store.create("prices", {}, now=NOW) is not None
    assert store.create("prices", {"other": True}, now=NOW) is None
    assert store.get("prices").definition == {}  # type: ignore[union-attr]


def test_update_fenced_applies_only_at_the_expected_version(engine: Engine) -> None:
    store = WorkflowStore(engine)
    wf = new_workflow(engine, "prices", {}, now=NOW)
    assert store.update_fenced(wf.id, wf.version + 1, now=NOW, status="paused") is None
    assert store.get("prices").status == "active"  # type: ignore[union-attr]
    updated = store.update_fenced(wf.id, wf.version, now=NOW, status="paused")
    assert updated is not None
    assert (updated.status, updated.version) == ("paused", wf.version + 1)
    assert store.delete_fenced(wf.id, wf.version) is False
    assert store.delete_fenced(wf.id, updated.version) is True


def test_datetimes_come_back_aware_utc(engine: Engine) -> None:
    berlin = timezone(timedelta(hours=1))
    wf = new_workflow(engine, "prices", {}, now=datetime(2026, 3, 1, 13, 0, tzinfo=berlin))
    assert wf.created_at == NOW
    assert wf.created_at.tzinfo is UTC


def test_naive_datetimes_are_refused(engine: Engine) -> None:
    with pytest.raises(Exception, match="naive datetime"):
        new_workflow(engine, "prices", {}, now=datetime(2026, 3, 1))


# --- schedules ---------------------------------------------------------------------------------


def test_schedule_upsert_inserts_then_updates(engine: Engine, workflow_id: int) -> None:
    store = ProducerScheduleStore(engine)
    inserted = store.upsert(spec(workflow_id), now=NOW)
    assert (inserted.schedule_value, inserted.next_run_at, inserted.state) == ("30s", NOW, {})
    later = NOW + timedelta(minutes=5)
    updated = store.upsert(spec(workflow_id, schedule_value="5m", next_run_at=later), now=later)
    assert updated.id == inserted.id
    assert (updated.schedule_value, updated.next_run_at) == ("5m", later)
    assert updated.created_at == NOW
    assert len(store.list(workflow_id)) == 1


def test_schedule_upsert_keeps_state_and_clears_claim(engine: Engine, workflow_id: int) -> None:
    store = ProducerScheduleStore(engine)
    row = store.upsert(spec(workflow_id), now=NOW)
    [slot] = BeatClaims(engine).claim_due(now=NOW, lease=timedelta(minutes=1), limit=10)
    outcome = SlotOutcome("succeeded", NOW, NOW + timedelta(seconds=30), {"count": 3})
    assert RunPath(engine).commit_slot(row.id, slot.claim_token, outcome, now=NOW)
    BeatClaims(engine).claim_due(
        now=NOW + timedelta(seconds=30), lease=timedelta(minutes=1), limit=10
    )
    assert store.get(workflow_id, "poll").claim_token is not None  # type: ignore[union-attr]
    rewritten = store.upsert(spec(workflow_id, schedule_value="1m"), now=NOW)
    assert rewritten.state == {"count": 3}
    assert (rewritten.claim_token, rewritten.claimed_until) == (None, None)


def test_schedule_get_list_delete(engine: Engine, workflow_id: int) -> None:
    store = ProducerScheduleStore(engine)
    store.upsert(spec(workflow_id, "b"), now=NOW)
    store.upsert(spec(workflow_id, "a"), now=NOW)
    other = new_workflow(engine, "other", {}, now=NOW).id
    store.upsert(spec(other, "c"), now=NOW)
    assert store.get(workflow_id, "missing") is None
    assert [s.producer_name for s in store.list(workflow_id)] == ["a", "b"]
    assert len(store.list()) == 3
    assert store.delete(workflow_id, "a") is True
    assert store.delete(workflow_id, "a") is False
    assert WorkflowStore(engine).delete_fenced(workflow_id, 1)  # its schedules go with it
    assert [s.producer_name for s in store.list()] == ["c"]


def test_update_config_leaves_schedule_and_next_run(engine: Engine, workflow_id: int) -> None:
    store = ProducerScheduleStore(engine)
    store.upsert(spec(workflow_id), now=NOW)
    [slot] = BeatClaims(engine).claim_due(now=NOW, lease=timedelta(minutes=1), limit=10)
    assert store.update_config(
        workflow_id, "poll", run="demo.counter", params={"x": 1}, timeout_seconds=5.0, now=NOW
    )
    row = store.get(workflow_id, "poll")
    assert row is not None
    assert (row.run, row.params, row.timeout_seconds) == ("demo.counter", {"x": 1}, 5.0)
    assert (row.next_run_at, row.claim_token) == (NOW, slot.claim_token)


def test_deleting_a_workflow_cascades(engine: Engine, workflow_id: int) -> None:
    ProducerScheduleStore(engine).upsert(spec(workflow_id), now=NOW)
    RunPath(engine).begin_run(
        workflow_id=workflow_id,
        producer_name="poll",
        scheduled_for=NOW,
        trigger="schedule",
        task_id="t1",
        now=NOW,
    )
    assert WorkflowStore(engine).delete_fenced(workflow_id, 1)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(producer_schedules)).scalar() == 0
        assert conn.execute(select(func.count()).select_from(producer_runs)).scalar() == 0


def test_concurrent_upserts_of_one_row_leave_exactly_one_row(
    engine: Engine, workflow_id: int
) -> None:
    """8 threads x 200 upserts of one (workflow, producer): no error, one row, a written value."""
    store = ProducerScheduleStore(engine)
    errors: list[BaseException] = []
    written: set[str] = set()
    barrier = threading.Barrier(8)

    def hammer(thread: int) -> None:
        barrier.wait()
        for i in range(200):
            value = f"{thread * 1000 + i + 1}s"
            written.add(value)
            try:
                store.upsert(spec(workflow_id, schedule_value=value), now=NOW)
            except BaseException as exc:
                errors.append(exc)

    threads = [threading.Thread(target=hammer, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    rows = store.list(workflow_id)
    assert len(rows) == 1
    assert rows[0].schedule_value in written


def test_one_transaction_groups_writes_of_several_stores(engine: Engine) -> None:
    workflows, schedules = WorkflowStore(engine), ProducerScheduleStore(engine)
    with pytest.raises(RuntimeError), engine.begin() as conn:
        wf = new_workflow(engine, "prices", {}, now=NOW, conn=conn)
        schedules.upsert(spec(wf.id), now=NOW, conn=conn)
        raise RuntimeError("abort")
    assert workflows.list() == []
    assert schedules.list() == []


# --- claims and commits ------------------------------------------------------------------------


def test_claim_due_takes_only_due_unpaused_unclaimed_rows(engine: Engine, workflow_id: int) -> None:
    store = ProducerScheduleStore(engine)
    store.upsert(spec(workflow_id, "late", next_run_at=NOW - timedelta(seconds=10)), now=NOW)
    store.upsert(spec(workflow_id, "now", next_run_at=NOW), now=NOW)
    store.upsert(spec(workflow_id, "future", next_run_at=NOW + timedelta(seconds=1)), now=NOW)
    store.upsert(spec(workflow_id, "manual", schedule_type="manual", next_run_at=None), now=NOW)
    paused = new_workflow(engine, "paused-flow", {}, now=NOW).id
    store.upsert(spec(paused, "p", paused=True, next_run_at=NOW - timedelta(hours=1)), now=NOW)
    lease = timedelta(seconds=60)
    slots = BeatClaims(engine).claim_due(now=NOW, lease=lease, limit=10)
    assert [(s.producer_name, s.workflow_name) for s in slots] == [
        ("late", "prices"),
        ("now", "prices"),
    ]
    assert slots[0].scheduled_for == NOW - timedelta(seconds=10)
    assert all(s.claimed_until == NOW + lease for s in slots)
    assert BeatClaims(engine).claim_due(now=NOW, lease=lease, limit=10) == []
    # An expired lease makes the slot due again, with a fresh token.
    again = BeatClaims(engine).claim_due(now=NOW + lease, lease=lease, limit=10)
    assert {s.producer_name for s in again} == {"late", "now", "future"}
    assert {s.claim_token for s in again}.isdisjoint({s.claim_token for s in slots})


def test_claim_due_tells_a_re_claim_of_an_expired_lease(engine: Engine, workflow_id: int) -> None:
    store = ProducerScheduleStore(engine)
    store.upsert(spec(workflow_id, "lost", next_run_at=NOW), now=NOW)
    lease = timedelta(seconds=60)
    claims = BeatClaims(engine)
    [first] = claims.claim_due(now=NOW, lease=lease, limit=10)
    assert not first.lease_expired
    store.upsert(spec(workflow_id, "fresh", next_run_at=NOW + lease), now=NOW)
    # The first claim's lease runs out with its message never run: beat claims it again.
    again = {s.producer_name: s for s in claims.claim_due(now=NOW + lease, lease=lease, limit=10)}
    assert again["lost"].lease_expired
    assert not again["fresh"].lease_expired
    assert again["lost"].claim_token != again["fresh"].claim_token != first.claim_token
    # The row holds each slot's own token: the one a run's commit is fenced on.
    with engine.connect() as conn:
        tokens = dict(
            conn.execute(
                select(producer_schedules.c.producer_name, producer_schedules.c.claim_token)
            ).all()
        )
    assert tokens == {name: slot.claim_token for name, slot in again.items()}
    # Given back together, both are due again at once, and claimed fresh.
    assert claims.release_claims(list(again.values())) == 2
    later = claims.claim_due(now=NOW + lease, lease=lease, limit=10)
    assert sorted(s.producer_name for s in later) == ["fresh", "lost"]
    assert not any(s.lease_expired for s in later)


def test_claim_due_respects_the_limit_oldest_first(engine: Engine, workflow_id: int) -> None:
    store = ProducerScheduleStore(engine)
    for n in range(5):
        store.upsert(spec(workflow_id, f"p{n}", next_run_at=NOW - timedelta(seconds=n)), now=NOW)
    first = BeatClaims(engine).claim_due(now=NOW, lease=timedelta(minutes=1), limit=2)
    assert [s.producer_name for s in first] == ["p4", "p3"]
    rest = BeatClaims(engine).claim_due(now=NOW, lease=timedelta(minutes=1), limit=10)
    assert [s.producer_name for s in rest] == ["p2", "p1", "p0"]


def _hold_claim(engine: Engine, workflow_id: int, name: str, until: datetime) -> None:
    """Give `name` a claim that ends at `until`, as a beat's claim or a retry's hold does."""
    with engine.begin() as conn:
        conn.execute(
            update(producer_schedules)
            .where(
                producer_schedules.c.workflow_id == workflow_id,
                producer_schedules.c.producer_name == name,
            )
            .values(claimed_until=until, claim_token=f"held-{name}")
        )


def test_claim_due_merges_unclaimed_and_lease_ended_rows_oldest_first(
    engine: Engine, workflow_id: int
) -> None:
    """Unclaimed rows and rows whose lease ran out come from two indexes: the claim still takes
    the oldest of both within its limit, and never a live claim."""
    store = ProducerScheduleStore(engine)
    for n in range(6):
        store.upsert(
            spec(workflow_id, f"p{n}", next_run_at=NOW - timedelta(seconds=6 - n)), now=NOW
        )
    _hold_claim(engine, workflow_id, "p0", NOW - timedelta(seconds=1))
    _hold_claim(engine, workflow_id, "p2", NOW)
    _hold_claim(engine, workflow_id, "p3", NOW + timedelta(seconds=1))  # live
    claims = BeatClaims(engine)
    first = claims.claim_due(now=NOW, lease=timedelta(minutes=1), limit=3)
    assert [(s.producer_name, s.lease_expired) for s in first] == [
        ("p0", True),
        ("p1", False),
        ("p2", True),
    ]
    rest = claims.claim_due(now=NOW, lease=timedelta(minutes=1), limit=10)
    assert [s.producer_name for s in rest] == ["p4", "p5"]


@pytest.mark.parametrize("lease_ended", [False, True], ids=["unclaimed", "half-lease-ended"])
def test_concurrent_claims_never_hand_out_a_row_twice(
    engine: Engine, workflow_id: int, lease_ended: bool
) -> None:
    """4 threads claim 200 due rows 7 at a time: no error, each row once, the work shared.

    The threads claim in rounds, all four at once each round (a barrier), so they contend for
    the same rows every time: a thread that got ahead cannot drain the table alone. With
    `lease_ended`, every other row's earlier claim has run out: both of the claim's searches
    (unclaimed rows, rows whose lease ended) are contended at once.
    """
    store = ProducerScheduleStore(engine)
    for n in range(200):
        store.upsert(spec(workflow_id, f"p{n}"), now=NOW)
        if lease_ended and n % 2 == 0:
            _hold_claim(engine, workflow_id, f"p{n}", NOW)
    threads = 4
    claimed: list[str] = []
    by_thread: Counter[int] = Counter()
    claimed_by_round: Counter[int] = Counter()
    errors: list[BaseException] = []
    lock = threading.Lock()
    together = threading.Barrier(threads, timeout=60)

    def claim(thread: int) -> None:
        try:
            for round_ in itertools.count():
                together.wait()  # every thread claims at the same moment
                batch = BeatClaims(engine).claim_due(now=NOW, lease=timedelta(minutes=1), limit=7)
                with lock:
                    claimed.extend(s.producer_name for s in batch)
                    by_thread[thread] += len(batch)
                    claimed_by_round[round_] += len(batch)
                together.wait()  # every claim of the round is counted
                if not claimed_by_round[round_]:
                    return
        except BaseException as exc:
            errors.append(exc)
            together.abort()  # the others stop waiting for this thread

    workers = [threading.Thread(target=claim, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert errors == []
    assert sorted(claimed) == sorted(f"p{n}" for n in range(200))
    assert len(by_thread) > 1, f"one thread claimed every row: {dict(by_thread)}"
    assert len(by_thread) == threads, f"a thread claimed nothing: {dict(by_thread)}"


def test_commit_slot_only_with_the_live_token(engine: Engine, workflow_id: int) -> None:
    store = ProducerScheduleStore(engine)
    row = store.upsert(spec(workflow_id), now=NOW)
    [slot] = BeatClaims(engine).claim_due(now=NOW, lease=timedelta(minutes=1), limit=10)
    failed = SlotOutcome("failed", NOW, NOW + timedelta(seconds=30), {"n": 1})
    assert RunPath(engine).commit_slot(row.id, "stale-token", failed, now=NOW) is False
    assert store.get(workflow_id, "poll").next_run_at == NOW  # type: ignore[union-attr]
    taken = RunPath(engine).take_claim(
        workflow_id, "poll", slot.claim_token, **THE_SLOT, now=NOW, lease=timedelta(minutes=5)
    )
    assert taken is not None and taken.claimed_until == NOW + timedelta(minutes=5)
    assert RunPath(engine).commit_slot(row.id, slot.claim_token, failed, now=NOW) is True
    after = store.get(workflow_id, "poll")
    assert after is not None
    assert (after.next_run_at, after.last_status, after.consecutive_failures) == (
        NOW + timedelta(seconds=30),
        "failed",
        1,
    )
    assert (after.claim_token, after.state) == (None, {"n": 1})
    assert (
        RunPath(engine).take_claim(
            workflow_id, "poll", slot.claim_token, **THE_SLOT, now=NOW, lease=LEASE
        )
        is None
    )
    assert RunPath(engine).commit_slot(row.id, slot.claim_token, failed, now=NOW) is False


def test_a_claim_whose_lease_ran_out_cannot_be_taken(engine: Engine, workflow_id: int) -> None:
    store = ProducerScheduleStore(engine)
    store.upsert(spec(workflow_id), now=NOW)
    [slot] = BeatClaims(engine).claim_due(now=NOW, lease=LEASE, limit=1)
    late = NOW + LEASE
    assert (
        RunPath(engine).take_claim(
            workflow_id, "poll", slot.claim_token, **THE_SLOT, now=late, lease=LEASE
        )
        is None
    )
    assert (
        RunPath(engine).take_claim(workflow_id, "poll", "other", **THE_SLOT, now=NOW, lease=LEASE)
        is None
    )
    assert RunPath(engine).take_claim(
        workflow_id, "poll", slot.claim_token, **THE_SLOT, now=NOW, lease=LEASE
    )


def test_failures_count_up_and_reset_after_success(engine: Engine, workflow_id: int) -> None:
    store = ProducerScheduleStore(engine)
    row = store.upsert(spec(workflow_id), now=NOW)
    moment = NOW
    for status, expected in [("failed", 1), ("failed", 2), ("succeeded", 0), ("failed", 1)]:
        [slot] = BeatClaims(engine).claim_due(now=moment, lease=timedelta(minutes=1), limit=1)
        moment += timedelta(seconds=30)
        RunPath(engine).commit_slot(
            row.id, slot.claim_token, SlotOutcome(status, NOW, moment, {}), now=NOW
        )
        assert store.get(workflow_id, "poll").consecutive_failures == expected  # type: ignore[union-attr]


def test_release_claims_makes_slots_due_again(engine: Engine, workflow_id: int) -> None:
    store = ProducerScheduleStore(engine)
    store.upsert(spec(workflow_id), now=NOW)
    slots = BeatClaims(engine).claim_due(now=NOW, lease=timedelta(minutes=1), limit=10)
    assert BeatClaims(engine).release_claims(slots) == 1
    assert len(BeatClaims(engine).claim_due(now=NOW, lease=timedelta(minutes=1), limit=10)) == 1


def test_release_claims_keeps_a_claim_a_worker_has_taken(engine: Engine, workflow_id: int) -> None:
    store = ProducerScheduleStore(engine)
    store.upsert(spec(workflow_id), now=NOW)
    slots = BeatClaims(engine).claim_due(now=NOW, lease=LEASE, limit=10)
    taken_at = NOW + timedelta(seconds=1)
    assert RunPath(engine).take_claim(
        workflow_id, "poll", slots[0].claim_token, **THE_SLOT, now=taken_at, lease=LEASE
    )
    assert BeatClaims(engine).release_claims(slots) == 0
    assert store.get(workflow_id, "poll").claim_token == slots[0].claim_token  # type: ignore[union-attr]


def test_next_wakeup_sees_next_runs_and_lease_expiry(engine: Engine, workflow_id: int) -> None:
    store = ProducerScheduleStore(engine)
    assert BeatClaims(engine).next_wakeup(now=NOW) is None
    store.upsert(spec(workflow_id, "a", next_run_at=NOW), now=NOW)
    store.upsert(spec(workflow_id, "b", next_run_at=NOW + timedelta(hours=1)), now=NOW)
    assert BeatClaims(engine).next_wakeup(now=NOW) == NOW
    BeatClaims(engine).claim_due(now=NOW, lease=timedelta(seconds=90), limit=1)
    assert BeatClaims(engine).next_wakeup(now=NOW) == NOW + timedelta(seconds=90)
    store.set_paused(workflow_id, True, now=NOW)
    assert BeatClaims(engine).next_wakeup(now=NOW) == NOW + timedelta(seconds=90)


def test_next_wakeup_sees_rows_whose_lease_ran_out(engine: Engine, workflow_id: int) -> None:
    """A row whose lease ran out wakes beat at its next run (it is due again), unless it is
    paused: a stale claim on a paused row must not make beat tick without pause."""
    store = ProducerScheduleStore(engine)
    store.upsert(spec(workflow_id, "later", next_run_at=NOW + timedelta(hours=1)), now=NOW)
    store.upsert(spec(workflow_id, "lost", next_run_at=NOW - timedelta(seconds=30)), now=NOW)
    _hold_claim(engine, workflow_id, "lost", NOW - timedelta(seconds=5))
    claims = BeatClaims(engine)
    assert claims.next_wakeup(now=NOW) == NOW - timedelta(seconds=30)
    paused = new_workflow(engine, "paused-flow", {}, now=NOW).id
    store.upsert(spec(paused, "held", next_run_at=NOW - timedelta(hours=1)), now=NOW)
    _hold_claim(engine, paused, "held", NOW - timedelta(seconds=5))
    store.set_paused(paused, True, now=NOW)
    store.set_paused(workflow_id, True, now=NOW)
    assert claims.next_wakeup(now=NOW) is None
    store.set_paused(workflow_id, False, now=NOW)
    _hold_claim(engine, workflow_id, "lost", NOW + timedelta(seconds=20))  # live again
    assert claims.next_wakeup(now=NOW) == NOW + timedelta(seconds=20)


def test_due_backlog_counts_unclaimed_and_lease_ended_due_rows(
    engine: Engine, workflow_id: int
) -> None:
    store = ProducerScheduleStore(engine)
    for name in ("unclaimed", "live", "ended", "paused"):
        store.upsert(
            spec(
                workflow_id, name, next_run_at=NOW - timedelta(seconds=1), paused=name == "paused"
            ),
            now=NOW,
        )
    store.upsert(spec(workflow_id, "future", next_run_at=NOW + timedelta(seconds=1)), now=NOW)
    _hold_claim(engine, workflow_id, "live", NOW + timedelta(seconds=1))
    _hold_claim(engine, workflow_id, "ended", NOW)
    _hold_claim(engine, workflow_id, "paused", NOW)
    assert due_backlog(engine, NOW) == 2  # unclaimed, ended


def test_set_paused_hides_rows_from_claims(engine: Engine, workflow_id: int) -> None:
    store = ProducerScheduleStore(engine)
    store.upsert(spec(workflow_id), now=NOW)
    assert store.set_paused(workflow_id, True, now=NOW) == 1
    assert BeatClaims(engine).claim_due(now=NOW, lease=timedelta(minutes=1), limit=10) == []
    store.set_paused(workflow_id, False, now=NOW)
    assert len(BeatClaims(engine).claim_due(now=NOW, lease=timedelta(minutes=1), limit=10)) == 1


# --- runs --------------------------------------------------------------------------------------


def test_run_begin_is_once_per_slot(engine: Engine, workflow_id: int) -> None:
    runs = RunStore(engine)
    slot: Slot = {"workflow_id": workflow_id, "producer_name": "poll", "scheduled_for": NOW}
    first = RunPath(engine).begin_run(**slot, trigger="schedule", task_id="t1", now=NOW)
    assert first is not None
    assert (first.status, first.attempt) == ("running", 1)
    retaken = RunPath(engine).begin_run(**slot, trigger="schedule", task_id="t2", now=NOW)
    assert retaken is not None
    assert (retaken.id, retaken.attempt, retaken.task_id) == (first.id, 2, "t2")
    # The attempt that took the slot over finishes it; the first one's late finish writes nothing.
    assert not RunPath(engine).finish_run(
        first, status="failed", finished_at=NOW, duration_ms=1.0, error="late", result=None
    )
    assert RunPath(engine).finish_run(
        retaken,
        status="succeeded",
        finished_at=NOW,
        duration_ms=1.5,
        error=None,
        result={"ok": True},
    )
    assert RunPath(engine).begin_run(**slot, trigger="schedule", task_id="t3", now=NOW) is None
    done = runs.get_slot(workflow_id, "poll", NOW)
    assert done is not None
    assert (done.status, done.result, done.task_id) == ("succeeded", {"ok": True}, "t2")


def test_run_list_newest_first_with_filters(engine: Engine, workflow_id: int) -> None:
    runs = RunStore(engine)
    for n in range(3):
        for producer in ("a", "b"):
            RunPath(engine).begin_run(
                workflow_id=workflow_id,
                producer_name=producer,
                scheduled_for=NOW + timedelta(seconds=n),
                trigger="schedule",
                task_id=None,
                now=NOW,
            )
    assert len(runs.list(workflow_id)) == 6
    only_a = runs.list(workflow_id, producer_name="a", limit=2)
    assert [(r.producer_name, r.scheduled_for) for r in only_a] == [
        ("a", NOW + timedelta(seconds=2)),
        ("a", NOW + timedelta(seconds=1)),
    ]

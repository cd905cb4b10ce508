"""Each slot policy at work on the run path and in beat's catch-up, in-process against real
SQLite and PostgreSQL, with a clock moved by hand: what runs, what the ledger records."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine

from models.catchup import catch_up, plan_slot
from models.change_store import ChangeAuthor, ChangeStore
from models.claims import BeatClaims
from models.schedules import IntervalSchedule, parse_cron
from models.slot_policy import RetryPolicy, SlotPolicy
from models.vocabulary import CatchupPolicy, ChangeAction, SlotFate
from tests.ledger_checks import coverage_problems, ledger_rows
from tests.test_runner import BOUNDS, LEASE, T0, Harness, _during_run
from workers.services.runner import Slot, SlotRunner

MINUTE = timedelta(minutes=1)
S = timedelta(seconds=1)


def _outcomes(h: Harness) -> list[tuple[Any, ...]]:
    return [
        (row.slot, row.range_end, row.slot_count, row.outcome, row.attempts)
        for row in ledger_rows(h.engine, h.workflow.id, "poll")
    ]


def _beat(h: Harness) -> Slot | None:
    """What beat does at the harness's clock: claim the due slot, apply its catch-up policy,
    and give the message it sends (None: none)."""
    claims = BeatClaims(h.engine)
    [claimed] = claims.claim_due(now=h.clock(), lease=LEASE, limit=1)
    message, decision = plan_slot(claimed, h.clock())
    if decision is not None:
        assert claims.move_claimed(claimed, decision, now=h.clock())
    if message is None:
        return None
    return Slot(
        workflow_id=message.workflow_id,
        workflow=message.workflow_name,
        producer=message.producer_name,
        scheduled_for=message.scheduled_for,
        claim_token=message.claim_token,
        task_id="task",
    )


# --- overlap -----------------------------------------------------------------------------------


def _long_run(h: Harness, until: timedelta) -> None:
    _during_run[:] = [lambda: setattr(h.clock, "now", T0 + until)]


@pytest.fixture(autouse=True)
def _clear_during_run() -> Any:
    yield
    _during_run.clear()


def test_overlap_skip_is_the_default_and_records_the_slots_it_skipped(engine: Engine) -> None:
    h = Harness(engine, run="test.during_run", schedule_value="1m")
    _long_run(h, 2 * MINUTE + 30 * S)
    h.runner.run(h.claim())
    assert h.schedule().next_run_at == T0 + 3 * MINUTE
    assert _outcomes(h)[1] == (T0 + MINUTE, T0 + 3 * MINUTE, 2, SlotFate.SKIPPED_OVERLAP, 0)


def test_overlap_buffer_one_runs_the_latest_slot_due_meanwhile_right_after(
    engine: Engine,
) -> None:
    h = Harness(
        engine, run="test.during_run", schedule_value="1m", policy={"overlap": "buffer_one"}
    )
    _long_run(h, 2 * MINUTE + 30 * S)
    h.runner.run(h.claim())
    # The 12:02 slot waits (it is due now, so beat sends it at once); 12:01 was skipped.
    assert h.schedule().next_run_at == T0 + 2 * MINUTE
    assert _outcomes(h) == [
        (T0, None, 1, SlotFate.SUCCEEDED, 1),
        (T0 + MINUTE, None, 1, SlotFate.SKIPPED_OVERLAP, 0),
    ]
    _during_run.clear()
    assert h.runner.run(h.claim())["status"] == "succeeded"
    assert _outcomes(h)[-1] == (T0 + 2 * MINUTE, None, 1, SlotFate.SUCCEEDED, 1)
    rows = ledger_rows(engine, h.workflow.id, "poll")
    assert coverage_problems(rows, IntervalSchedule(MINUTE), T0, T0 + 3 * MINUTE) == []


# --- catch-up ----------------------------------------------------------------------------------


def test_catchup_latest_runs_the_latest_missed_slot_and_coalesces_the_rest(
    engine: Engine,
) -> None:
    h = Harness(engine, schedule_value="1m")
    h.clock.now = T0 + 4 * MINUTE + 10 * S  # down for four slots
    message = _beat(h)
    assert message is not None and message.scheduled_for == T0 + 4 * MINUTE
    assert h.runner.run(message)["status"] == "succeeded"
    assert _outcomes(h) == [
        (T0, T0 + 4 * MINUTE, 4, SlotFate.COALESCED, 0),
        (T0 + 4 * MINUTE, None, 1, SlotFate.SUCCEEDED, 1),
    ]


def test_catchup_all_runs_every_missed_slot_in_the_window_oldest_first(engine: Engine) -> None:
    policy = {"catchup": "all", "catchup_window": 150.0}
    h = Harness(engine, schedule_value="1m", policy=policy)
    h.clock.now = T0 + 4 * MINUTE + 10 * S  # 12:00 and 12:01 are older than 2m30s
    ran = []
    for _ in range(3):
        message = _beat(h)
        assert message is not None
        ran.append(message.scheduled_for)
        h.runner.run(message)
    assert ran == [T0 + 2 * MINUTE, T0 + 3 * MINUTE, T0 + 4 * MINUTE]
    assert h.schedule().next_run_at == T0 + 5 * MINUTE
    rows = ledger_rows(engine, h.workflow.id, "poll")
    assert [(r.slot, r.outcome, r.slot_count) for r in rows] == [
        (T0, SlotFate.MISSED, 2),
        (T0 + 2 * MINUTE, SlotFate.SUCCEEDED, 1),
        (T0 + 3 * MINUTE, SlotFate.SUCCEEDED, 1),
        (T0 + 4 * MINUTE, SlotFate.SUCCEEDED, 1),
    ]
    assert "catch-up window" in rows[0].reason
    assert coverage_problems(rows, IntervalSchedule(MINUTE), T0, T0 + 5 * MINUTE) == []


def test_catchup_none_runs_nothing_missed_and_waits_for_the_next_slot(engine: Engine) -> None:
    h = Harness(engine, schedule_value="1m", policy={"catchup": "none"})
    h.clock.now = T0 + 3 * MINUTE + 10 * S
    assert _beat(h) is None
    row = h.schedule()
    assert (row.next_run_at, row.claim_token) == (T0 + 4 * MINUTE, None)
    assert _outcomes(h) == [(T0, T0 + 4 * MINUTE, 4, SlotFate.MISSED, 0)]
    h.clock.now = T0 + 4 * MINUTE
    message = _beat(h)
    assert message is not None and message.scheduled_for == T0 + 4 * MINUTE


def test_a_slot_on_time_is_sent_as_it_is_under_every_policy() -> None:
    for catchup in CatchupPolicy:
        policy = SlotPolicy(catchup=catchup, catchup_window=MINUTE)
        assert catch_up(IntervalSchedule(MINUTE), policy, T0, T0 + 59 * S) is None


def test_slots_older_than_the_window_are_missed_even_under_latest() -> None:
    policy = SlotPolicy(catchup_window=10 * MINUTE)
    decision = catch_up(IntervalSchedule(MINUTE), policy, T0, T0 + timedelta(hours=1, seconds=5))
    assert decision is not None and decision.run_slot == T0 + timedelta(hours=1)
    assert [(e.slot, e.range_end, e.outcome, e.slot_count) for e in decision.entries] == [
        # 12:50 is 10m05s old at 13:00:05: outside the window too.
        (T0, T0 + 51 * MINUTE, SlotFate.MISSED, 51),
        (T0 + 51 * MINUTE, T0 + 60 * MINUTE, SlotFate.COALESCED, 9),
    ]


def test_catchup_latest_finds_the_latest_slot_of_a_cron_down_for_a_day() -> None:
    cron = parse_cron("* * * * * *")  # every second: more slots than the walk takes
    now = T0 + timedelta(days=1, milliseconds=300)
    decision = catch_up(cron, SlotPolicy(), T0, now)
    assert decision is not None and decision.run_slot == T0 + timedelta(days=1)
    [coalesced] = decision.entries
    assert (coalesced.slot, coalesced.range_end) == (T0, T0 + timedelta(days=1))


# --- start deadline ----------------------------------------------------------------------------


def test_a_slot_started_past_its_deadline_is_missed_not_run(engine: Engine) -> None:
    h = Harness(engine, run="test.record", schedule_value="1m", policy={"start_deadline": 10.0})
    slot = h.claim()
    h.clock.now = T0 + 15 * S  # the message sat in the queue
    assert h.runner.run(slot)["status"] == "skipped"
    row = h.schedule()
    assert row.state == {} and row.next_run_at == T0 + MINUTE  # nothing ran
    [own] = ledger_rows(engine, h.workflow.id, "poll")
    assert (own.outcome, own.policy) == (SlotFate.MISSED, "start_deadline=10s")
    assert "0:00:15 late" in own.reason
    [run] = h.runs.list(h.workflow.id)
    assert run.status == "skipped" and "start deadline" in (run.error or "")


def test_the_message_expires_at_the_start_deadline(engine: Engine) -> None:
    Harness(engine, schedule_value="1m", policy={"start_deadline": 10.0})
    [claimed] = BeatClaims(engine).claim_due(now=T0, lease=LEASE, limit=1)
    message, decision = plan_slot(claimed, T0)
    assert decision is None and message is not None
    assert message.message_expires == T0 + 10 * S < claimed.claimed_until
    assert replace(message, start_by=None).message_expires == claimed.claimed_until


# --- retries -----------------------------------------------------------------------------------


def test_retries_try_the_slot_again_and_keep_the_grid(engine: Engine) -> None:
    policy = SlotPolicy(retries=RetryPolicy(max=3, backoff=S, max_backoff=4 * S)).to_json()
    h = Harness(
        engine, run="demo.fail", params={"message": "flaky"}, schedule_value="1m", policy=policy
    )
    attempts = []
    while True:
        slot = _beat(h)
        assert slot is not None and slot.scheduled_for == T0  # always the same slot
        status = h.runner.run(slot)["status"]
        attempts.append(status)
        row = h.schedule()
        if status != "retrying":
            break
        assert row.next_run_at == T0 and row.claim_token is None
        assert row.claimed_until is not None and row.claimed_until > h.clock()
        h.clock.now = row.claimed_until  # beat claims it again when the backoff is over
    assert attempts == ["retrying", "retrying", "retrying", "failed"]
    assert h.schedule().next_run_at == T0 + MINUTE  # the grid is kept
    assert h.schedule().consecutive_failures == 1  # one failed slot, not four
    [own] = ledger_rows(engine, h.workflow.id, "poll")
    assert (own.outcome, own.attempts) == (SlotFate.FAILED, 4)
    [run] = h.runs.list(h.workflow.id)
    assert (run.status, run.attempt) == ("failed", 4)


def test_a_retry_that_would_reach_the_next_slot_is_not_made(engine: Engine) -> None:
    policy = SlotPolicy(retries=RetryPolicy(max=5, backoff=20 * S, max_backoff=MINUTE)).to_json()
    h = Harness(engine, run="demo.fail", schedule_value="1m", policy=policy)
    statuses = []
    for _ in range(4):
        slot = _beat(h)
        assert slot is not None
        statuses.append(h.runner.run(slot)["status"])
        if statuses[-1] != "retrying":
            break
        h.clock.now = h.schedule().claimed_until
    # 20s*[0.5,1) then 40s*[0.5,1): the third attempt would start at or after 12:01.
    assert statuses[-1] == "failed" and len(statuses) <= 3
    assert h.clock() < T0 + MINUTE
    assert h.schedule().next_run_at == T0 + MINUTE


def test_backoff_doubles_up_to_its_cap_with_jitter() -> None:
    retries = RetryPolicy(max=10, backoff=10 * S, max_backoff=MINUTE)
    rng = random.Random(1)
    delays = [retries.delay(n, rng) for n in range(1, 6)]
    caps = [10 * S, 20 * S, 40 * S, MINUTE, MINUTE]
    assert all(cap / 2 <= delay < cap for delay, cap in zip(delays, caps, strict=True))
    assert len(set(delays)) == len(delays)


# --- auto-pause --------------------------------------------------------------------------------


def test_n_failed_slots_in_a_row_pause_the_producer_with_the_reason(engine: Engine) -> None:
    h = Harness(
        engine,
        run="demo.fail",
        params={"message": "upstream down"},
        schedule_value="1m",
        policy={"pause_after_failures": 3},
    )
    for n in range(3):
        h.clock.now = T0 + n * MINUTE
        assert not h.schedule().paused
        h.runner.run(h.claim())
    row = h.schedule()
    assert row.paused and row.consecutive_failures == 3
    assert (row.paused_by, row.paused_at) == ("auto-pause", T0 + 2 * MINUTE)
    assert row.pause_note is not None
    assert "3 consecutive failed slots" in row.pause_note and "upstream down" in row.pause_note
    assert BeatClaims(engine).claim_due(now=T0 + 10 * MINUTE, lease=LEASE, limit=1) == []
    # The pause is in the history, committed with the slot that reached the count; the two
    # failures before it recorded nothing.
    [entry] = ChangeStore(engine).list(h.workflow.name, 10)
    assert (entry.action, entry.producer, entry.actor) == (
        ChangeAction.AUTO_PAUSE,
        "poll",
        "auto-pause",
    )
    assert (entry.version, entry.note, entry.changed_at) == (
        h.workflow.version,
        row.pause_note,
        T0 + 2 * MINUTE,
    )


def test_an_overlap_allow_run_that_reaches_the_count_records_its_auto_pause(
    engine: Engine,
) -> None:
    policy = {"overlap": "allow", "max_concurrent": 2, "pause_after_failures": 1}
    h = Harness(engine, run="demo.fail", schedule_value="1m", policy=policy)
    assert h.runner.run(h.claim())["status"] == "failed"
    assert h.schedule().paused_by == "auto-pause"
    [entry] = ChangeStore(engine).list(h.workflow.name, 10)
    assert (entry.action, entry.producer) == (ChangeAction.AUTO_PAUSE, "poll")


def test_an_auto_pause_entry_keeps_its_workflow_history_bounded(engine: Engine) -> None:
    h = Harness(engine, run="demo.fail", schedule_value="1m", policy={"pause_after_failures": 1})
    store = ChangeStore(engine)
    for version in (1, 2, 3):
        with engine.begin() as conn:
            store.record(
                workflow=h.workflow.name,
                version=version,
                action=ChangeAction.DEPLOY,
                definition={},
                diff={},
                author=ChangeAuthor("ops"),
                now=T0,
                keep=100,
                conn=conn,
            )
    runner = SlotRunner(
        engine,
        lease=LEASE,
        max_timeout=timedelta(seconds=2),
        default_timeout=timedelta(seconds=1),
        clock=h.clock,
        result_bounds=BOUNDS,
        state_bounds=BOUNDS,
        history_kept=2,
    )
    assert runner.run(h.claim())["status"] == "failed"
    kept = store.list(h.workflow.name, 10)
    assert [(e.version, e.action) for e in kept] == [
        (h.workflow.version, ChangeAction.AUTO_PAUSE),
        (3, ChangeAction.DEPLOY),
    ]


def test_a_success_resets_the_count_before_it_pauses(engine: Engine) -> None:
    h = Harness(
        engine, run="test.during_run", schedule_value="1m", policy={"pause_after_failures": 2}
    )
    h.schedules.update_config(
        h.workflow.id, "poll", run="demo.fail", params={}, timeout_seconds=None, now=T0
    )
    h.runner.run(h.claim())
    h.clock.now = T0 + MINUTE
    h.schedules.update_config(
        h.workflow.id, "poll", run="demo.noop", params={}, timeout_seconds=None, now=T0
    )
    h.runner.run(h.claim())
    h.clock.now = T0 + 2 * MINUTE
    h.schedules.update_config(
        h.workflow.id, "poll", run="demo.fail", params={}, timeout_seconds=None, now=T0
    )
    h.runner.run(h.claim())
    row = h.schedule()
    assert not row.paused and row.consecutive_failures == 1


def test_a_resumed_producer_counts_its_failures_afresh(engine: Engine) -> None:
    """Both resumes (one producer, the whole workflow) clear the count through `set_paused`:
    a producer resumed after an auto-pause is not paused again by its first failure."""
    h = Harness(engine, run="demo.fail", schedule_value="1m", policy={"pause_after_failures": 2})
    for n in range(2):
        h.clock.now = T0 + n * MINUTE
        h.runner.run(h.claim())
    assert h.schedule().paused and h.schedule().consecutive_failures == 2
    h.clock.now = T0 + 2 * MINUTE
    h.schedules.set_paused(h.workflow.id, False, producer_name="poll", now=h.clock())
    assert h.schedule().consecutive_failures == 0
    assert h.runner.run(h.claim())["status"] == "failed"
    row = h.schedule()
    assert not row.paused and row.consecutive_failures == 1


# --- overlap allow -----------------------------------------------------------------------------


STEP = timedelta(seconds=20)


def _start_next_slot_meanwhile(h: Harness, results: list[str]) -> None:
    """While the first run runs: a minute passes and the next slot is claimed and run."""

    def next_slot() -> None:
        _during_run.clear()  # the nested run does nothing more
        h.clock.now = T0 + STEP + S  # well within the first run's lease
        results.append(h.runner.run(h.claim())["status"])

    _during_run[:] = [next_slot]


@pytest.mark.parametrize(("max_concurrent", "second"), [(2, "succeeded"), (1, "skipped")])
def test_overlap_allow_runs_the_next_slot_alongside_up_to_max_concurrent(
    engine: Engine, max_concurrent: int, second: str
) -> None:
    policy = {"overlap": "allow", "max_concurrent": max_concurrent}
    h = Harness(engine, run="test.during_run", schedule_value="20s", policy=policy)
    results: list[str] = []
    _start_next_slot_meanwhile(h, results)
    assert h.runner.run(h.claim())["status"] == "succeeded"
    assert results == [second]
    expected = SlotFate.SUCCEEDED if second == "succeeded" else SlotFate.SKIPPED_OVERLAP
    assert [(r.slot, r.outcome) for r in ledger_rows(engine, h.workflow.id, "poll")] == [
        (T0, SlotFate.SUCCEEDED),
        (T0 + STEP, expected),
    ]
    assert h.schedule().next_run_at == T0 + 2 * STEP
    assert h.schedule().claim_token is None


@pytest.mark.filterwarnings("ignore")
def test_overlap_allow_records_a_run_whose_worker_died_as_failed(engine: Engine) -> None:
    policy = {"overlap": "allow", "max_concurrent": 2}
    h = Harness(engine, run="test.during_run", schedule_value="1m", policy=policy)

    def die() -> None:
        raise SystemExit("killed")  # as a SIGKILL would: nothing after it runs

    _during_run[:] = [die]
    with pytest.raises(SystemExit):
        h.runner.run(h.claim())
    _during_run.clear()
    [run] = h.runs.list(h.workflow.id)
    assert run.status == "running"
    # The next slot's start, a lease later, finishes it failed, with its ledger entry.
    h.clock.now = T0 + LEASE + S
    assert h.runner.run(h.claim())["status"] == "succeeded"
    rows = ledger_rows(engine, h.workflow.id, "poll")
    assert rows[0].slot == T0 and rows[0].outcome == SlotFate.FAILED
    assert "worker died" in rows[0].reason
    assert (
        coverage_problems(rows, IntervalSchedule(MINUTE), T0, h.schedule().next_run_at or T0) == []
    )


def test_a_message_dropped_at_its_deadline_leaves_the_slot_to_beat_then(engine: Engine) -> None:
    h = Harness(engine, schedule_value="1m", policy={"start_deadline": 10.0})
    claims = BeatClaims(engine)
    [claimed] = claims.claim_due(now=T0, lease=LEASE, limit=1)
    message, _ = plan_slot(claimed, T0)
    assert message is not None and message.start_by == T0 + 10 * S
    assert claims.shorten_claim(claimed, message.start_by)
    assert claims.claim_due(now=T0 + 9 * S, lease=LEASE, limit=1) == []  # still its claim
    h.clock.now = T0 + 11 * S  # the message expired unstarted: beat records the slot missed
    assert _beat(h) is None
    assert _outcomes(h) == [(T0, None, 1, SlotFate.MISSED, 0)]
    [missed] = ledger_rows(engine, h.workflow.id, "poll")
    assert "start deadline" in missed.reason
    assert h.schedule().next_run_at == T0 + MINUTE

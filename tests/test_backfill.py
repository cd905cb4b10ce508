"""`drumline backfill` without processes: which slots it takes (models/backfill_plan.py), what it
records (models/backfill_store.py), how beat's claim paces it, and every refusal of the
command line. SQLite and PostgreSQL; the end-to-end runs are in test_backfill_e2e.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import Engine, select

from models.backfill_plan import backfill_range
from models.backfill_store import BackfillStore, SlotRequest
from models.errors import BackfillRangeError
from models.run_path import RunPath
from models.run_store import RunStore
from models.schedule_store import ProducerScheduleStore
from models.schedules import IntervalSchedule, parse_cron
from models.tables import backfill_slots
from models.trigger_claims import TriggerClaims
from models.types import utc_now
from models.vocabulary import RunStatus, Trigger
from tests.databases import new_workflow, schedule_spec, table_dump
from workers.cli.main import cli

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
LEASE = timedelta(seconds=30)
SECOND = timedelta(seconds=1)


def drumline(env: dict[str, str], *args: str) -> Result:
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def _text(instant: datetime) -> str:
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_slots_are_the_schedule_s_own_before_its_next_run() -> None:
    every_10s = IntervalSchedule(timedelta(seconds=10))
    next_run = NOW + timedelta(seconds=5)  # the grid is :05, :15, ...
    found = backfill_range(
        every_10s, NOW - timedelta(seconds=30), NOW, now=NOW, before=next_run
    ).slots
    assert found == tuple(NOW - timedelta(seconds=s) for s in (25, 15, 5))
    # The next run and what follows are beat's: a range reaching it stops before it.
    before = backfill_range(every_10s, NOW - timedelta(seconds=30), NOW, now=NOW, before=NOW)
    assert before.slots == tuple(NOW - timedelta(seconds=s) for s in (30, 20, 10))
    hourly = parse_cron("0 * * * *", "UTC")
    edges = backfill_range(hourly, NOW - timedelta(hours=2), NOW, now=NOW, before=None).slots
    assert edges == tuple(NOW - timedelta(hours=h) for h in (2, 1, 0))  # both ends included


@pytest.mark.parametrize(
    ("start", "end", "argument", "fragment"),
    [
        (NOW, NOW + SECOND, "--to", "is in the future"),
        (NOW, NOW - SECOND, "--from", "is after --to"),
        (NOW - timedelta(hours=3), NOW, "--from/--to", "more than 10,000 slots"),
    ],
)
def test_a_bad_range_is_refused_naming_the_argument(
    start: datetime, end: datetime, argument: str, fragment: str
) -> None:
    with pytest.raises(BackfillRangeError) as refused:
        backfill_range(IntervalSchedule(SECOND), start, end, now=NOW, before=None)
    assert refused.value.argument == argument
    assert fragment in refused.value.reason


def _requests(slots: list[datetime], tag: str) -> list[SlotRequest]:
    return [
        SlotRequest(slot, f"{tag}-{i}", f"prices.poll@{slot.isoformat()}", NOW + i * SECOND)
        for i, slot in enumerate(slots)
    ]


def _create(engine: Engine, workflow_id: int, slots: list[datetime], tag: str) -> object:
    every = backfill_range(
        IntervalSchedule(timedelta(seconds=10)), slots[0], slots[-1], now=NOW, before=None
    )
    return BackfillStore(engine).create(
        workflow_id=workflow_id,
        producer_name="poll",
        slots=every,
        requests=_requests(list(every.slots), tag),
        rate=1.0,
        actor="ops@host",
        note="bug 42 fixed",
        lease=LEASE,
        now=NOW,
    )


def test_each_slot_is_requested_once_and_only_a_failed_or_skipped_one_again(
    engine: Engine,
) -> None:
    workflow = new_workflow(engine, "prices", {"name": "prices"}, now=NOW)
    ProducerScheduleStore(engine).upsert(schedule_spec(workflow.id, next_run_at=NOW), now=NOW)
    slots = [NOW - timedelta(seconds=s) for s in (50, 40, 30, 20, 10)]
    run_path = RunPath(engine)
    for slot, status in ((slots[1], RunStatus.SUCCEEDED), (slots[2], RunStatus.FAILED)):
        run = run_path.begin_run(
            workflow_id=workflow.id,
            producer_name="poll",
            scheduled_for=slot,
            trigger=Trigger.SCHEDULE,
            task_id="scheduled",
            now=slot,
        )
        assert run is not None
        run_path.finish_run(
            run, status=status, finished_at=slot, duration_ms=1.0, error=None, result=None
        )
    failed_id = RunStore(engine).get_slot(workflow.id, "poll", slots[2])
    assert failed_id is not None
    first = BackfillStore(engine).create(
        workflow_id=workflow.id,
        producer_name="poll",
        slots=backfill_range(
            IntervalSchedule(timedelta(seconds=10)), slots[0], slots[-1], now=NOW, before=None
        ),
        requests=_requests(slots, "a"),
        rate=1.0,
        actor="ops@host",
        note=None,
        lease=LEASE,
        now=NOW,
    )
    assert (first.slot_count, first.requested, first.status) == (5, 4, "running")
    runs = {run.scheduled_for: run for run in RunStore(engine).list(workflow.id)}
    assert len(runs) == 5  # one row per slot: the failed one was taken over, not doubled
    assert runs[slots[1]].status == RunStatus.SUCCEEDED
    assert runs[slots[2]].id == failed_id.id
    assert {runs[s].trigger for s in (slots[0], *slots[2:])} == {Trigger.BACKFILL}
    assert all(runs[s].status == RunStatus.PENDING for s in (slots[0], *slots[2:]))
    # A second backfill of the same range adds nothing: every slot has a request now.
    second = BackfillStore(engine).create(
        workflow_id=workflow.id,
        producer_name="poll",
        slots=backfill_range(
            IntervalSchedule(timedelta(seconds=10)), slots[0], slots[-1], now=NOW, before=None
        ),
        requests=_requests(slots, "b"),
        rate=1.0,
        actor="ops@host",
        note=None,
        lease=LEASE,
        now=NOW,
    )
    assert (second.requested, second.status) == (0, "done")
    with engine.connect() as conn:
        owned = conn.execute(select(backfill_slots.c.backfill_id)).scalars().all()
    assert sorted(owned) == [first.id] * 4
    # Progress, then a cancel withdraws what has not started.
    [progress] = BackfillStore(engine).progress(workflow.id)
    assert (progress.done, progress.pending, progress.failed) == (0, 4, 0)
    cancelled = BackfillStore(engine).cancel(first.id, NOW)
    assert cancelled is not None and cancelled[1] == 4
    assert BackfillStore(engine).cancel(first.id, NOW) is None  # not running any more
    assert {r.status for r in RunStore(engine).list(workflow.id)} == {"succeeded", "skipped"}
    assert BackfillStore(engine).progress(workflow.id) == []


def test_beat_sends_a_backfill_s_requests_at_its_rate_oldest_first(engine: Engine) -> None:
    workflow = new_workflow(engine, "prices", {"name": "prices"}, now=NOW)
    ProducerScheduleStore(engine).upsert(schedule_spec(workflow.id, next_run_at=NOW), now=NOW)
    slots = [NOW - timedelta(seconds=s) for s in (40, 30, 20, 10)]
    _create(engine, workflow.id, slots, "a")  # not before NOW, NOW+1s, NOW+2s, NOW+3s
    claims = TriggerClaims(engine)
    sent = claims.claim_due(now=NOW + SECOND, lease=LEASE, limit=10)
    assert [d.scheduled_for for d in sent] == slots[:2]
    assert claims.claim_due(now=NOW + SECOND, lease=LEASE, limit=10) == []
    assert [
        d.trigger_token for d in claims.claim_due(now=NOW + 5 * SECOND, lease=LEASE, limit=1)
    ] == ["a-2"]
    # A request sent and not started within a lease is sent again.
    again = claims.claim_due(now=NOW + SECOND + LEASE, lease=LEASE, limit=10)
    assert [d.trigger_token for d in again] == ["a-0", "a-1", "a-3"]


def test_bad_backfill_arguments_exit_2_naming_them_and_change_nothing(
    env: dict[str, str], engine: Engine
) -> None:
    now = utc_now()
    workflow = new_workflow(engine, "prices", {"name": "prices"}, now=now)
    ProducerScheduleStore(engine).upsert(
        schedule_spec(workflow.id, next_run_at=now + SECOND, schedule_value="1s"), now=now
    )
    before = table_dump(engine)
    hour_ago, past = _text(now - timedelta(hours=1)), _text(now - timedelta(minutes=1))
    cases = [
        (
            ("prices", "poll", "--from", "2026-01-01T00:00:00", "--to", past),
            "--from",
            "no time zone",
        ),
        (("prices", "poll", "--from", hour_ago, "--to", "soon"), "--to", "not an ISO 8601"),
        (
            ("prices", "poll", "--from", hour_ago, "--to", _text(now + timedelta(hours=1))),
            "--to",
            "is in the future",
        ),
        (("prices", "poll", "--from", past, "--to", hour_ago), "--from", "is after --to"),
        (
            ("prices", "poll", "--from", _text(now - timedelta(hours=3)), "--to", past),
            "--from/--to",
            "more than 10,000 slots",
        ),
        (
            ("nosuch", "poll", "--from", hour_ago, "--to", past),
            "NAME",
            "no workflow named 'nosuch'",
        ),
        (
            ("prices", "nosuch", "--from", hour_ago, "--to", past),
            "PRODUCER",
            "has no producer 'nosuch'",
        ),
        (
            ("prices", "poll", "--from", hour_ago, "--to", past, "--rate", "0/s"),
            "--rate",
            "not a positive rate",
        ),
        (
            ("prices", "poll", "--from", hour_ago, "--to", past, "--rate", "5000/s"),
            "--rate",
            "not between",
        ),
        (
            ("prices", "poll", "--from", hour_ago, "--to", past, "--rate", "fast"),
            "--rate",
            "not a rate",
        ),
        (("prices", "poll", "--to", past), "--from", "give an ISO 8601 instant"),
        (("prices", "poll", "--from", hour_ago, "--to", past, "--note", "x" * 5000), "--note", ""),
    ]
    for args, argument, fragment in cases:
        for dry_run in ((), ("--dry-run",)):
            result = drumline(env, "backfill", *args, *dry_run)
            assert result.exit_code == 2, (args, result.stderr)
            named = result.stderr.replace("'", "")
            assert f"Invalid value for {argument}:" in named, (args, result.stderr)
            assert fragment in result.stderr, (args, result.stderr)
    for backfill_id in ("0", "99999999999", "x"):
        result = drumline(env, "backfill", "--cancel", backfill_id)
        assert result.exit_code == 2 and "Invalid value for '--cancel'" in result.stderr
    assert table_dump(engine) == before


def test_a_dry_run_lists_the_slots_and_writes_nothing(env: dict[str, str], engine: Engine) -> None:
    now = utc_now().replace(microsecond=0)
    workflow = new_workflow(engine, "prices", {"name": "prices"}, now=now)
    ProducerScheduleStore(engine).upsert(
        schedule_spec(workflow.id, next_run_at=now, schedule_value="1s"), now=now
    )
    before = table_dump(engine)
    start, end = now - timedelta(seconds=100), now - timedelta(seconds=1)
    result = drumline(
        env, "backfill", "prices", "poll", "--from", _text(start), "--to", _text(end), "--dry-run"
    )
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("would run 100 of 100 slots of prices.poll")
    assert lines[1:4] == [f"  {(start + i * SECOND).isoformat()}" for i in range(3)]
    assert lines[4] == "  ... 94 more ..."
    assert lines[-1] == f"  {end.isoformat()}"
    assert table_dump(engine) == before


def test_backfill_records_it_status_shows_it_and_cancel_withdraws_it(
    env: dict[str, str], engine: Engine
) -> None:
    now = utc_now().replace(microsecond=0)
    workflow = new_workflow(engine, "prices", {"name": "prices"}, now=now)
    ProducerScheduleStore(engine).upsert(
        schedule_spec(workflow.id, next_run_at=now, schedule_value="1s"), now=now
    )
    start, end = now - timedelta(seconds=20), now - timedelta(seconds=1)
    args = ("backfill", "prices", "poll", "--from", _text(start), "--to", _text(end))
    made = drumline(env, *args, "--rate", "2/s", "--actor", "ops@host", "--note", "bug 42")
    assert made.exit_code == 0, made.stderr
    assert made.stdout.startswith("backfill 1: 20 of 20 slots requested, sent at 2/s (running)")
    again = drumline(env, *args, "--json")
    assert '"total": 0' in again.stdout and '"status": "done"' in again.stdout
    status = drumline(env, "status", "prices")
    assert "backfill 1 of poll" in status.stdout
    assert "running, 0/20 done, 0 failed, 20 pending" in status.stdout
    as_json = drumline(env, "status", "prices", "--json")
    assert '"pending": 20' in as_json.stdout and '"note": "bug 42"' in as_json.stdout
    cancelled = drumline(env, "backfill", "--cancel", "1")
    assert cancelled.exit_code == 0, cancelled.stderr
    assert cancelled.stdout == "cancelled backfill 1: 20 requests withdrawn\n"
    assert drumline(env, "backfill", "--cancel", "1").exit_code == 1
    runs = RunStore(engine).list(workflow.id)
    assert len(runs) == 20 and {(r.status, r.error) for r in runs} == {("skipped", "cancelled")}


def test_a_backfill_run_whose_worker_died_is_sent_again_under_a_new_attempt(
    engine: Engine,
) -> None:
    workflow = new_workflow(engine, "prices", {"name": "prices"}, now=NOW)
    ProducerScheduleStore(engine).upsert(schedule_spec(workflow.id, next_run_at=NOW), now=NOW)
    slot = NOW - timedelta(seconds=10)
    _create(engine, workflow.id, [slot], "a")
    claims, run_path = TriggerClaims(engine), RunPath(engine)
    [sent] = claims.claim_due(now=NOW, lease=LEASE, limit=10)
    started = run_path.start_triggered(
        workflow_id=workflow.id,
        workflow_name="prices",
        producer_name="poll",
        scheduled_for=slot,
        trigger_token=sent.trigger_token,
        task_id="prices.poll",
        now=NOW,
    )
    assert not isinstance(started, str)
    _, lost = started
    # Running, within its lease: its worker may still be at it.
    assert claims.claim_due(now=NOW + LEASE - SECOND, lease=LEASE, limit=10) == []
    [again] = claims.claim_due(now=NOW + LEASE, lease=LEASE, limit=10)
    assert (again.scheduled_for, again.trigger_token) == (slot, sent.trigger_token)
    retaken = RunStore(engine).get_slot(workflow.id, "poll", slot)
    assert retaken is not None and (retaken.status, retaken.attempt) == ("pending", 2)
    # The lost attempt's late commit is fenced off; the new attempt runs the slot.
    assert not run_path.finish_run(
        lost, status="failed", finished_at=NOW, duration_ms=1.0, error="late", result=None
    )
    restarted = run_path.start_triggered(
        workflow_id=workflow.id,
        workflow_name="prices",
        producer_name="poll",
        scheduled_for=slot,
        trigger_token=again.trigger_token,
        task_id="prices.poll",
        now=NOW + LEASE,
    )
    assert not isinstance(restarted, str) and restarted[1].attempt == 2

"""`drumline trigger --at` and `drumline cancel`: trigger requests recorded ahead, sent by beat
when due (models/trigger_claims.py), withdrawn before they start. Real Redis, worker and beat
processes, SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from click.testing import CliRunner, Result
from sqlalchemy import Engine

from models.run_store import RunStore
from models.schedule_store import ProducerScheduleStore
from models.trigger_claims import TriggerClaims
from models.types import utc_now
from tests.databases import new_workflow, schedule_spec
from tests.e2e import deploy, executions, journal_producer, runs_of, wait_until
from tests.processes import running_beat, running_worker
from workers.cli.main import cli

LEASE = timedelta(seconds=30)


def drumline(env: dict[str, str], *args: str) -> Result:
    """The `drumline` command in this process (a subprocess would spend seconds importing)."""
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def _text(instant: datetime) -> str:
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_due_requests_are_claimed_once_per_lease_oldest_first(engine: Engine) -> None:
    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    workflow = new_workflow(engine, "prices", {"name": "prices"}, now=now)
    ProducerScheduleStore(engine).upsert(schedule_spec(workflow.id, next_run_at=None), now=now)
    runs = RunStore(engine)
    for seconds, token in ((20, "late"), (10, "early"), (40, "future")):
        runs.request_trigger(
            workflow_id=workflow.id,
            producer_name="poll",
            scheduled_for=now + timedelta(seconds=seconds),
            trigger_token=token,
            task_id=f"prices.poll@{seconds}",
            now=now,
        )
    runs.cancel_trigger(workflow.id, "poll", now + timedelta(seconds=20), now)  # 'late'
    claims = TriggerClaims(engine)
    assert claims.claim_due(now=now + timedelta(seconds=5), lease=LEASE, limit=10) == []
    at_30 = now + timedelta(seconds=30)
    due = claims.claim_due(now=at_30, lease=LEASE, limit=10)
    assert [(d.workflow_name, d.trigger_token, d.scheduled_for) for d in due] == [
        ("prices", "early", now + timedelta(seconds=10))
    ]
    assert due[0].claimed_until == at_30 + LEASE
    # Claimed: not again within the lease (another beat, the next tick) ...
    assert claims.claim_due(now=at_30 + timedelta(seconds=1), lease=LEASE, limit=10) == []
    # ... but again once the lease has run out and it still has not started.
    later = at_30 + LEASE + timedelta(seconds=1)
    again = claims.claim_due(now=later, lease=LEASE, limit=10)
    assert [d.trigger_token for d in again] == ["early", "future"]
    assert claims.claim_due(now=later, lease=LEASE, limit=10) == []


def test_bad_trigger_at_and_cancel_arguments_are_refused_and_change_nothing(
    env: dict[str, str], engine: Engine
) -> None:
    now = utc_now()
    workflow = new_workflow(engine, "prices", {"name": "prices"}, now=now)
    ProducerScheduleStore(engine).upsert(
        schedule_spec(
            workflow.id, next_run_at=now, schedule_type="cron", schedule_value="0 * * * *"
        ),
        now=now,
    )
    hour = (now + timedelta(hours=1)).replace(minute=0, second=0, microsecond=0)
    cases = [
        (_text(now - timedelta(minutes=1)), "has passed"),
        (_text(now + timedelta(days=400)), "more than 366 days ahead"),
        ("tomorrow", "not an ISO 8601 instant"),
        ("2030-01-01T00:00:00", "has no time zone"),
        (_text(hour), "is a scheduled slot of poll already"),
    ]
    for at, fragment in cases:
        result = drumline(env, "trigger", "prices", "poll", "--at", at)
        assert result.exit_code == 2, (at, result.stderr)
        assert fragment in result.stderr, (at, result.stderr)
    missing = drumline(env, "cancel", "prices", "poll", "--at", _text(hour))
    assert missing.exit_code == 1
    assert "no pending trigger request of prices.poll" in missing.stderr
    assert RunStore(engine).list(workflow.id) == []


def test_a_request_at_a_time_runs_once_then_and_a_cancelled_one_never(
    env: dict[str, str], engine: Engine, tmp_path: Path
) -> None:
    journal = tmp_path / "journal.jsonl"
    with (
        running_worker(env, tmp_path),
        running_beat(env, tmp_path, name="beat1"),
        running_beat(env, tmp_path, name="beat2"),
    ):
        deploy(env, {"name": "later", "producers": {"job": journal_producer(journal)}})
        start = utc_now().replace(microsecond=0)
        first, cancelled, last = (start + timedelta(seconds=s) for s in (8, 11, 14))
        for at in (first, cancelled, last):
            result = drumline(env, "trigger", "later", "job", "--at", _text(at))
            assert result.exit_code == 0, result.stderr
            assert "beat sends it at" in result.stdout
        withdrawn = drumline(env, "cancel", "later", "job", "--at", _text(cancelled), "--json")
        assert withdrawn.exit_code == 0, withdrawn.stderr
        assert '"status": "skipped"' in withdrawn.stdout

        def finished() -> dict[datetime, str]:
            return {r.scheduled_for: r.status for r in runs_of(engine, "later")}

        # The last request runs after the cancelled one's time: beat has passed it by then.
        wait_until(lambda: finished().get(last) == "succeeded", 60, "the last request to run")
        assert utc_now() >= last
    runs = {run.scheduled_for: run for run in runs_of(engine, "later")}
    assert {at: run.status for at, run in runs.items()} == {
        first: "succeeded",
        cancelled: "skipped",
        last: "succeeded",
    }
    assert runs[cancelled].error == "cancelled"
    assert all(runs[at].started_at >= at for at in (first, last))  # not before its time
    started = executions(journal)
    assert sorted(started) == sorted(("job", at.isoformat()) for at in (first, last)), started
    assert max(started.values()) == 1
    again = drumline(env, "cancel", "later", "job", "--at", _text(first))
    assert again.exit_code == 1  # it has run: nothing to cancel

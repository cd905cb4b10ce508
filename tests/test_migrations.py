"""Alembic migrations: they build the schema on both backends, undo it, and match the models."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, bindparam, inspect, select, text
from sqlalchemy.exc import IntegrityError

from models import migrate
from models.backfill_plan import BackfillRange
from models.backfill_store import BackfillStore, SlotRequest
from models.change_store import ChangeAuthor, ChangeStore
from models.claims import BeatClaims
from models.db import make_engine
from models.heartbeat_store import HeartbeatStore
from models.run_path import RunPath
from models.run_store import RunStore
from models.schedule_store import ProducerScheduleStore
from models.slot_ledger import LedgerEntry
from models.slot_ledger_store import Ledger
from models.tables import metadata, workflow_changes
from models.types import UTCDateTime
from models.vocabulary import ChangeAction, SlotFate
from tests.databases import new_workflow, schedule_spec, table_dump


def test_upgrade_on_empty_database_creates_every_table(empty_db_url: str) -> None:
    engine = make_engine(empty_db_url)
    assert migrate.current_revision(engine) is None
    migrate.upgrade(engine)
    assert migrate.current_revision(engine) == migrate.head_revision()
    tables = set(inspect(engine).get_table_names())
    assert {"workflows", "producer_schedules", "producer_runs"} <= tables
    indexes = {ix["name"] for ix in inspect(engine).get_indexes("producer_schedules")}
    assert {"ix_producer_schedules_unclaimed_due", "ix_producer_schedules_claimed"} <= indexes
    engine.dispose()


def test_downgrade_to_base_removes_every_table(empty_db_url: str) -> None:
    engine = make_engine(empty_db_url)
    migrate.upgrade(engine)
    migrate.downgrade(engine, "base")
    assert migrate.current_revision(engine) is None
    remaining = set(inspect(engine).get_table_names()) - {"alembic_version"}
    assert remaining == set()
    engine.dispose()


def test_models_and_migrations_do_not_drift(db_url: str) -> None:
    engine = make_engine(db_url)
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, metadata) == []
    engine.dispose()


def test_upgrade_twice_is_a_no_op(db_url: str) -> None:
    """A second upgrade of a migrated database with rows in every table changes nothing."""
    engine = make_engine(db_url)
    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    workflow = new_workflow(engine, "prices", {"name": "prices"}, now=now)
    ProducerScheduleStore(engine).upsert(schedule_spec(workflow.id, next_run_at=now), now=now)
    RunPath(engine).begin_run(
        workflow_id=workflow.id,
        producer_name="poll",
        scheduled_for=now,
        trigger="schedule",
        task_id="prices.poll@1",
        now=now,
    )
    with engine.begin() as conn:
        ChangeStore(engine).record(
            workflow="prices",
            version=1,
            action=ChangeAction.DEPLOY,
            definition={"name": "prices"},
            diff={},
            author=ChangeAuthor("ops@host"),
            now=now,
            keep=10,
            conn=conn,
        )
    HeartbeatStore(engine).register(host="h1", pid=1, version="0.1.0", now=now)
    _backfill_one_slot(engine, workflow.id, now - timedelta(seconds=30), now)
    paused = LedgerEntry(slot=now, outcome=SlotFate.PAUSED, reason="paused", policy="paused")
    RunPath(engine).record_outcomes(Ledger(workflow.id, "poll", (paused,)), now=now)
    before = table_dump(engine)
    assert all(before.values()), before
    tables = set(inspect(engine).get_table_names())
    migrate.upgrade(engine)
    assert migrate.current_revision(engine) == migrate.head_revision()
    assert table_dump(engine) == before
    assert set(inspect(engine).get_table_names()) == tables
    engine.dispose()


def test_0002_adds_trigger_requests_to_a_populated_database_and_downgrades(
    empty_db_url: str,
) -> None:
    """0001 -> 0002 keeps every row of a populated database; 0002 -> 0001 keeps them too,
    a pending trigger request (which 0001 cannot hold) as skipped."""
    engine = make_engine(empty_db_url)
    migrate.upgrade(engine, "0001")
    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    slot = {"producer_name": "poll", "trigger": "schedule", "attempt": 1, "started_at": now}
    with engine.begin() as conn:
        workflow_id = conn.execute(
            text(
                "INSERT INTO workflows (name, status, version, definition, created_at, updated_at)"
                " VALUES ('prices', 'active', 1, '{}', :now, :now) RETURNING id"
            ).bindparams(bindparam("now", type_=UTCDateTime())),
            {"now": now},
        ).scalar_one()
        for n, status in enumerate(("succeeded", "failed", "running", "skipped")):
            conn.execute(
                text(
                    "INSERT INTO producer_runs (workflow_id, producer_name, scheduled_for,"
                    " trigger, attempt, status, started_at, error)"
                    " VALUES (:w, :producer_name, :at, :trigger, :attempt, :status,"
                    " :started_at, :error)"
                ).bindparams(
                    bindparam("at", type_=UTCDateTime()),
                    bindparam("started_at", type_=UTCDateTime()),
                ),
                {
                    **slot,
                    "w": workflow_id,
                    "at": now + timedelta(seconds=n),
                    "status": status,
                    "error": None if status == "succeeded" else f"{status} error",
                },
            )
    old_rows = _runs(engine)
    assert len(old_rows) == 4

    migrate.upgrade(engine, "0002")
    assert migrate.current_revision(engine) == "0002"
    assert [row[:-1] for row in _runs(engine)] == old_rows  # the new column comes last
    assert all(row[-1] is None for row in _runs(engine))
    runs = RunStore(engine)
    request = runs.request_trigger(
        workflow_id=workflow_id,
        producer_name="poll",
        scheduled_for=now + timedelta(minutes=1),
        trigger_token="t0ken",
        task_id="prices.poll@manual",
        now=now,
    )
    assert request is not None and request.status == "pending"

    migrate.downgrade(engine, "0001")
    assert migrate.current_revision(engine) == "0001"
    rows = _runs(engine)
    assert rows[:4] == old_rows
    assert [(row[7], row[11]) for row in rows[4:]] == [
        ("skipped", "trigger request dropped by a schema downgrade")
    ]
    # 0001's constraint is back: no pending status.
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(text("UPDATE producer_runs SET status = 'pending'"))
    engine.dispose()


def _runs(engine: Engine) -> list[tuple[object, ...]]:
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(text("SELECT * FROM producer_runs ORDER BY id"))]


# The revision 0004 (the change history) follows 0003.
BEFORE_0004 = "0003"


def test_0004_adds_the_change_history_to_a_populated_database_and_downgrades(
    empty_db_url: str,
) -> None:
    """previous -> 0004 keeps every row and records each workflow as it stands; 0004 ->
    previous drops only the history."""
    engine = make_engine(empty_db_url)
    migrate.upgrade(engine, BEFORE_0004)
    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    for name, version in (("prices", 3), ("reports", 1)):
        workflow = new_workflow(engine, name, {"name": name, "description": name}, now=now)
        ProducerScheduleStore(engine).upsert(schedule_spec(workflow.id, next_run_at=now), now=now)
        with engine.begin() as conn:
            conn.execute(
                text("UPDATE workflows SET version = :v WHERE id = :id"),
                {"v": version, "id": workflow.id},
            )
    before = _rows(engine, OLD_TABLES)

    migrate.upgrade(engine, "0004")
    assert _rows(engine, OLD_TABLES) == before
    assert _changes(engine) == [
        ("prices", 3, "deploy", {"name": "prices", "description": "prices"}, "drumline migrate"),
        ("reports", 1, "deploy", {"name": "reports", "description": "reports"}, "drumline migrate"),
    ]

    migrate.downgrade(engine, BEFORE_0004)
    assert migrate.current_revision(engine) == BEFORE_0004
    assert "workflow_changes" not in inspect(engine).get_table_names()
    assert _rows(engine, OLD_TABLES) == before
    engine.dispose()


def _changes(engine: Engine) -> list[tuple[object, ...]]:
    """The history entries in the columns every revision since 0004 has, in id order."""
    c = workflow_changes.c
    with engine.connect() as conn:
        query = select(c.workflow, c.version, c.action, c.definition, c.actor).order_by(c.id)
        return [tuple(row) for row in conn.execute(query)]


OLD_TABLES = ("workflows", "producer_schedules", "producer_runs")


def _rows(engine: Engine, tables: tuple[str, ...]) -> dict[str, list[tuple[object, ...]]]:
    """Every row of `tables`, read with plain SQL (the models name tables a revision lacks)."""
    with engine.connect() as conn:
        return {
            table: [tuple(row) for row in conn.execute(text(f"SELECT * FROM {table} ORDER BY id"))]
            for table in tables
        }


# The revision 0005 (beat heartbeats) follows 0004.
BEFORE_0005 = "0004"


def test_0005_adds_beat_heartbeats_to_a_populated_database_and_downgrades(
    empty_db_url: str,
) -> None:
    """The previous revision -> 0005 keeps every row; 0005 -> previous drops only the
    heartbeats, which the previous schema has no place for."""
    engine = make_engine(empty_db_url)
    migrate.upgrade(engine, BEFORE_0005)
    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    workflow = new_workflow(engine, "prices", {"name": "prices"}, now=now)
    ProducerScheduleStore(engine).upsert(schedule_spec(workflow.id, next_run_at=now), now=now)
    before = _rows(engine, OLD_TABLES)
    assert before["producer_schedules"]

    migrate.upgrade(engine, "0005")
    assert _rows(engine, OLD_TABLES) == before
    store = HeartbeatStore(engine)
    row_id = store.register(host="h1", pid=42, version="0.1.0", now=now)
    store.beat(row_id, now=now + timedelta(seconds=5), slots_sent=3)
    (beat,) = store.list()
    assert (beat.host, beat.pid, beat.slots_sent) == ("h1", 42, 3)
    assert beat.last_tick_at == now + timedelta(seconds=5)

    migrate.downgrade(engine, BEFORE_0005)
    assert migrate.current_revision(engine) == BEFORE_0005
    assert "beat_heartbeats" not in inspect(engine).get_table_names()
    assert _rows(engine, OLD_TABLES) == before
    engine.dispose()


# The revision 0006 (rule schedules) follows 0005.
RULES_PREVIOUS_REVISION = "0005"


def test_0006_adds_rule_schedules_to_a_populated_database_and_downgrades(
    empty_db_url: str,
) -> None:
    """previous -> 0006 keeps every schedule row; a rules schedule (long JSON) fits; 0006 ->
    previous keeps every row too, a rules producer (which the old schema cannot hold) as
    manual-only, never due."""
    engine = make_engine(empty_db_url)
    migrate.upgrade(engine, RULES_PREVIOUS_REVISION)
    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    workflow = new_workflow(engine, "prices", {"name": "prices"}, now=now)
    store = ProducerScheduleStore(engine)
    for name, kind, value in (("poll", "interval", "30s"), ("nightly", "cron", "0 2 * * *")):
        spec = schedule_spec(
            workflow.id, name, next_run_at=now, schedule_type=kind, schedule_value=value
        )
        store.upsert(spec, now=now)
    store.upsert(
        schedule_spec(
            workflow.id, "manual", next_run_at=None, schedule_type="manual", schedule_value=""
        ),
        now=now,
    )
    old_rows = _schedules(engine)
    assert len(old_rows) == 3

    migrate.upgrade(engine, "0006")
    assert _schedules(engine) == old_rows
    rules = '{"entries":[' + ",".join(['{"at":"2026-12-31T22:00:00Z"}'] * 20) + '],"exclude":[]}'
    assert len(rules) > 200
    store.upsert(
        schedule_spec(
            workflow.id, "once", next_run_at=now, schedule_type="rules", schedule_value=rules
        ),
        now=now,
    )
    assert [row[7] for row in _schedules(engine)][-1] == rules  # schedule_value

    migrate.downgrade(engine, RULES_PREVIOUS_REVISION)
    rows = _schedules(engine)
    assert rows[:3] == old_rows
    once = rows[3]
    assert (once[2], once[6], once[7], once[10]) == ("once", "manual", "", None)
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(text("UPDATE producer_schedules SET schedule_type = 'rules'"))
    engine.dispose()


def _schedules(engine: Engine) -> list[tuple[object, ...]]:
    with engine.connect() as conn:
        query = text("SELECT * FROM producer_schedules ORDER BY id")
        return [tuple(row) for row in conn.execute(query)]


# The revision the slot ledger's migration follows (re-chained at merge: change only this).
LEDGER_PREVIOUS_REVISION = "0002"


def test_0003_adds_the_slot_ledger_to_a_populated_database_and_downgrades(
    empty_db_url: str,
) -> None:
    """previous -> 0003 keeps every schedule and run row (with `{}` policies and no pause
    note); 0003 -> previous drops the ledger and the new columns, keeping every row."""
    engine = make_engine(empty_db_url)
    migrate.upgrade(engine, LEDGER_PREVIOUS_REVISION)
    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    with engine.begin() as conn:
        workflow_id = conn.execute(
            text(
                "INSERT INTO workflows (name, status, version, definition, created_at, updated_at)"
                " VALUES ('prices', 'active', 1, '{}', :now, :now) RETURNING id"
            ).bindparams(bindparam("now", type_=UTCDateTime())),
            {"now": now},
        ).scalar_one()
        conn.execute(
            text(
                "INSERT INTO producer_schedules (workflow_id, producer_name, run, params,"
                " schedule_type, schedule_value, timezone, paused, next_run_at, state,"
                " created_at, updated_at) VALUES (:w, 'poll', 'demo.noop', '{}', 'interval',"
                " '1m', 'UTC', false, :now, '{}', :now, :now)"
            ).bindparams(bindparam("now", type_=UTCDateTime())),
            {"w": workflow_id, "now": now},
        )
        conn.execute(
            text(
                "INSERT INTO producer_runs (workflow_id, producer_name, scheduled_for, trigger,"
                " attempt, status, started_at) VALUES (:w, 'poll', :now, 'schedule', 1,"
                " 'succeeded', :now)"
            ).bindparams(bindparam("now", type_=UTCDateTime())),
            {"w": workflow_id, "now": now},
        )
    schedules, runs = _table(engine, "producer_schedules"), _table(engine, "producer_runs")

    migrate.upgrade(engine, "0003")
    upgraded = ProducerScheduleStore(engine).list(workflow_id)
    assert [(row.policy, row.paused_at, row.paused_by, row.pause_note) for row in upgraded] == [
        ({}, None, None, None)
    ]
    assert [row[: len(schedules[0])] for row in _table(engine, "producer_schedules")] == schedules
    entry = LedgerEntry(slot=now, outcome=SlotFate.SUCCEEDED, reason="ran", policy="timeout=60s")
    RunPath(engine).record_outcomes(Ledger(workflow_id, "poll", (entry,)), now=now)
    assert len(_table(engine, "slot_outcomes")) == 1

    migrate.downgrade(engine, LEDGER_PREVIOUS_REVISION)
    assert "slot_outcomes" not in inspect(engine).get_table_names()
    assert _table(engine, "producer_schedules") == schedules
    assert _table(engine, "producer_runs") == runs
    engine.dispose()


def _table(engine: Engine, table: str) -> list[tuple[object, ...]]:
    return _rows(engine, (table,))[table]


# The revision the producer-changes migration (0008) follows (re-chained at merge: change only
# this).
PRODUCER_CHANGES_PREVIOUS_REVISION = "0007"


def test_0008_adds_producer_history_entries_to_a_populated_database_and_downgrades(
    empty_db_url: str,
) -> None:
    """previous -> 0008 keeps every history entry (as workflow-wide ones); producer entries
    then share their workflow's version, workflow-wide ones still cannot; 0008 -> previous drops
    the producer entries (the old schema has one entry per version) and keeps every other."""
    engine = make_engine(empty_db_url)
    migrate.upgrade(engine, PRODUCER_CHANGES_PREVIOUS_REVISION)
    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    insert = text(
        "INSERT INTO workflow_changes (workflow, version, action, definition, diff, actor,"
        " note, changed_at) VALUES (:w, :v, :a, '{}', '{}', 'ops', :note, :now)"
    ).bindparams(bindparam("now", type_=UTCDateTime()))
    with engine.begin() as conn:
        for workflow, version, action in (
            ("prices", 1, "deploy"),
            ("prices", 2, "pause"),
            ("reports", 1, "deploy"),
            ("reports", 2, "delete"),
        ):
            conn.execute(
                insert, {"w": workflow, "v": version, "a": action, "note": action, "now": now}
            )
    before = _table(engine, "workflow_changes")
    others = _rows(engine, OLD_TABLES)

    migrate.upgrade(engine, "0008")
    assert [row[:-1] for row in _table(engine, "workflow_changes")] == before
    assert all(row[-1] is None for row in _table(engine, "workflow_changes"))  # producer
    store = ChangeStore(engine)
    for producer, action in (
        ("fast", ChangeAction.PAUSE_PRODUCER),
        ("fast", ChangeAction.AUTO_PAUSE),
    ):
        with engine.begin() as conn:
            store.record(
                workflow="prices",
                version=2,
                producer=producer,
                action=action,
                definition={},
                diff={},
                author=ChangeAuthor("ops"),
                now=now,
                keep=100,
                conn=conn,
            )
    assert [(e.version, e.action, e.producer) for e in store.list("prices", 10)] == [
        (2, ChangeAction.AUTO_PAUSE, "fast"),
        (2, ChangeAction.PAUSE_PRODUCER, "fast"),
        (2, ChangeAction.PAUSE, None),
        (1, ChangeAction.DEPLOY, None),
    ]
    with pytest.raises(IntegrityError), engine.begin() as conn:  # one entry per version still
        conn.execute(insert, {"w": "prices", "v": 2, "a": "deploy", "note": None, "now": now})

    migrate.downgrade(engine, PRODUCER_CHANGES_PREVIOUS_REVISION)
    assert _table(engine, "workflow_changes") == before
    assert _rows(engine, OLD_TABLES) == others
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(insert, {"w": "prices", "v": 2, "a": "deploy", "note": None, "now": now})
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(insert, {"w": "prices", "v": 3, "a": "auto_pause", "note": None, "now": now})
    engine.dispose()


# The revision the backfills' migration follows (re-chained at merge: change only this).
BACKFILL_PREVIOUS_REVISION = "0006"


def _backfill_one_slot(engine: Engine, workflow_id: int, slot: datetime, now: datetime) -> None:
    """A backfill of producer `poll` with one pending request, at `slot`."""
    BackfillStore(engine).create(
        workflow_id=workflow_id,
        producer_name="poll",
        slots=BackfillRange(slot, slot, (slot,)),
        requests=[SlotRequest(slot, "token-b", f"prices.poll@{slot.isoformat()}", now)],
        rate=10.0,
        actor="ops@host",
        note=None,
        lease=timedelta(seconds=30),
        now=now,
    )


def test_0007_adds_backfills_to_a_populated_database_and_downgrades(empty_db_url: str) -> None:
    """previous -> 0007 keeps every run row and the pending-request index, and a backfill's
    request and an excluded ledger range can be recorded; 0007 -> previous keeps every run
    row, a backfill's run as a manual one (its request that never started skipped), an
    excluded range as missed, and drops the backfill tables."""
    engine = make_engine(empty_db_url)
    migrate.upgrade(engine, BACKFILL_PREVIOUS_REVISION)
    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    workflow = new_workflow(engine, "prices", {"name": "prices"}, now=now)
    ProducerScheduleStore(engine).upsert(schedule_spec(workflow.id, next_run_at=now), now=now)
    RunPath(engine).begin_run(
        workflow_id=workflow.id,
        producer_name="poll",
        scheduled_for=now - timedelta(seconds=60),
        trigger="schedule",
        task_id="prices.poll@1",
        now=now,
    )
    RunStore(engine).request_trigger(
        workflow_id=workflow.id,
        producer_name="poll",
        scheduled_for=now + timedelta(hours=1),
        trigger_token="token-m",
        task_id="prices.poll@2",
        now=now,
    )
    before = _rows(engine, OLD_TABLES)
    assert len(before["producer_runs"]) == 2

    migrate.upgrade(engine, "0007")
    assert _rows(engine, OLD_TABLES) == before
    indexes = {index["name"] for index in inspect(engine).get_indexes("producer_runs")}
    assert "ix_producer_runs_pending" in indexes
    _backfill_one_slot(engine, workflow.id, now - timedelta(seconds=30), now)
    assert len(_table(engine, "backfills")) == 1
    backfilled = RunStore(engine).get_slot(workflow.id, "poll", now - timedelta(seconds=30))
    assert backfilled is not None and backfilled.trigger == "backfill"
    excluded = LedgerEntry(
        slot=now + timedelta(hours=12),
        range_end=now + timedelta(hours=18),
        slot_count=None,
        outcome=SlotFate.EXCLUDED,
        reason="excluded by the producer's exclusions",
        policy="exclude",
    )
    RunPath(engine).record_outcomes(Ledger(workflow.id, "poll", (excluded,)), now=now)

    migrate.downgrade(engine, BACKFILL_PREVIOUS_REVISION)
    assert not {"backfills", "backfill_slots"} & set(inspect(engine).get_table_names())
    runs = _table(engine, "producer_runs")
    assert runs[:2] == before["producer_runs"]
    assert len(runs) == 3
    kept = RunStore(engine).get_slot(workflow.id, "poll", now - timedelta(seconds=30))
    assert kept is not None and (kept.trigger, kept.status) == ("manual", "skipped")
    [ledger] = _table(engine, "slot_outcomes")
    assert ledger[1:3] == (workflow.id, "poll")
    assert "missed" in ledger and "excluded by the producer's exclusions" in ledger
    indexes = {index["name"] for index in inspect(engine).get_indexes("producer_runs")}
    assert "ix_producer_runs_pending" in indexes
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(text("UPDATE producer_runs SET trigger = 'backfill'"))
    engine.dispose()


def _schedule_indexes(engine: Engine) -> set[str]:
    return {str(ix["name"]) for ix in inspect(engine).get_indexes("producer_schedules")}


def test_0009_leaves_claimed_rows_out_of_the_due_index_and_downgrades(
    empty_db_url: str,
) -> None:
    """previous -> 0009 keeps every row and swaps the due index for the unclaimed one; a claim
    then takes the unclaimed row and the one whose lease ran out, not the live claim nor the
    paused row; 0009 -> previous keeps every row and brings the old index back."""
    engine = make_engine(empty_db_url)
    migrate.upgrade(engine, UNCLAIMED_DUE_PREVIOUS_REVISION)
    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    workflow = new_workflow(engine, "prices", {"name": "prices"}, now=now)
    store = ProducerScheduleStore(engine)
    for i, name in enumerate(("lease-ended", "live-claim", "unclaimed", "paused")):
        due = now - timedelta(minutes=10) + timedelta(seconds=i)
        spec = schedule_spec(workflow.id, name, next_run_at=due, paused=name == "paused")
        store.upsert(spec, now=now)
    live_lease = timedelta(minutes=10)
    claims = BeatClaims(engine)
    # Claimed 5 min ago for 1 min; then for 10 min, while the first claim was live.
    (ended,) = claims.claim_due(now=now - timedelta(minutes=5), lease=timedelta(minutes=1), limit=1)
    (live,) = claims.claim_due(
        now=now - timedelta(minutes=4, seconds=30), lease=live_lease, limit=1
    )
    assert (ended.producer_name, live.producer_name) == ("lease-ended", "live-claim")
    before = _rows(engine, OLD_TABLES)
    assert len(before["producer_schedules"]) == 4
    assert "ix_producer_schedules_due" in _schedule_indexes(engine)

    migrate.upgrade(engine, "0009")
    assert _rows(engine, OLD_TABLES) == before
    indexes = _schedule_indexes(engine)
    assert "ix_producer_schedules_unclaimed_due" in indexes
    assert "ix_producer_schedules_due" not in indexes
    taken = claims.claim_due(now=now, lease=timedelta(minutes=5), limit=10)
    assert [(slot.producer_name, slot.lease_expired) for slot in taken] == [
        ("lease-ended", True),
        ("unclaimed", False),
    ]
    claimed = _rows(engine, OLD_TABLES)

    migrate.downgrade(engine, UNCLAIMED_DUE_PREVIOUS_REVISION)
    assert migrate.current_revision(engine) == UNCLAIMED_DUE_PREVIOUS_REVISION
    assert _rows(engine, OLD_TABLES) == claimed
    indexes = _schedule_indexes(engine)
    assert "ix_producer_schedules_due" in indexes
    assert "ix_producer_schedules_unclaimed_due" not in indexes
    engine.dispose()


# The revision the unclaimed due index's migration (0009) follows (re-chained at merge: change
# only this).
UNCLAIMED_DUE_PREVIOUS_REVISION = "0008"

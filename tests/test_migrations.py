"""Alembic migrations: they build the schema on both backends, undo it, and match the models."""

from __future__ import annotations

from datetime import UTC, datetime

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from models import migrate
from models.db import make_engine
from models.run_store import RunStore
from models.schedule_store import ProducerScheduleStore
from models.tables import metadata
from models.workflow_store import WorkflowStore
from tests.databases import schedule_spec, table_dump


def test_upgrade_on_empty_database_creates_every_table(empty_db_url: str) -> None:
    engine = make_engine(empty_db_url)
    assert migrate.current_revision(engine) is None
    migrate.upgrade(engine)
    assert migrate.current_revision(engine) == migrate.head_revision()
    tables = set(inspect(engine).get_table_names())
    assert {"workflows", "producer_schedules", "producer_runs"} <= tables
    indexes = {ix["name"] for ix in inspect(engine).get_indexes("producer_schedules")}
    assert {"ix_producer_schedules_due", "ix_producer_schedules_claimed"} <= indexes
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
    workflow = WorkflowStore(engine).upsert("prices", {"name": "prices"}, now=now)
    ProducerScheduleStore(engine).upsert(schedule_spec(workflow.id, next_run_at=now), now=now)
    RunStore(engine).begin(
        workflow_id=workflow.id,
        producer_name="poll",
        scheduled_for=now,
        trigger="schedule",
        task_id="prices.poll@1",
        now=now,
    )
    before = table_dump(engine)
    assert all(before.values()), before
    tables = set(inspect(engine).get_table_names())
    migrate.upgrade(engine)
    assert migrate.current_revision(engine) == migrate.head_revision()
    assert table_dump(engine) == before
    assert set(inspect(engine).get_table_names()) == tables
    engine.dispose()

"""The JSON shapes of what drumline shows: `drumline ls | status | runs | trigger | plan |
history | pause ... --json` and the web's `/api/...` answer with the same dicts, built here once."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any

from models.backfill_store import BackfillProgress, BackfillRecord
from models.change_store import ChangeRecord
from models.log_text import last_line, loggable
from models.read_models import ProducerStatus, WorkflowOverview
from models.records import JSONDict, RunRecord, ScheduleRecord
from models.slot_ledger_store import SlotOutcomeRecord
from models.slot_policy import SlotPolicy
from models.stored_schedules import schedule_from_row
from workers.services.lifecycle import ChangeSummary, DeployPlan

FAILURE_CHARS = 80
FIRE_TIMES = 3


def json_default(value: Any) -> Any:
    """`json.dumps(..., default=json_default)`: instants as ISO-8601 text."""
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot serialise {type(value).__name__}")


def describe_schedule(row: ScheduleRecord) -> str:
    schedule = schedule_from_row(row.schedule_type, row.schedule_value, row.timezone)
    return schedule.describe(exhausted=row.next_run_at is None)


def describe_policy(row: ScheduleRecord) -> str:
    """The producer's slot policies in one line (defaults included)."""
    return SlotPolicy.from_json(row.policy).describe()


def paused_by(row: ScheduleRecord) -> str | None:
    """Who paused the producer, when and why, in one line; None if nobody said."""
    if not row.paused or row.paused_by is None:
        return None
    note = f": {row.pause_note}" if row.pause_note else ""
    at = row.paused_at.strftime("%Y-%m-%d %H:%M:%SZ") if row.paused_at else "-"
    return loggable(f"{row.paused_by} at {at}{note}", 300)


def last_failure(error: str | None) -> str | None:
    """A run's error as one short, escaped line (a traceback's last line)."""
    return loggable(last_line(error), FAILURE_CHARS) if error else None


def workflow_view(workflow: WorkflowOverview) -> dict[str, Any]:
    """One workflow of `ls --json`."""
    return asdict(workflow)


def producer_view(producer: ProducerStatus) -> dict[str, Any]:
    """One producer of `status --json`."""
    row = producer.schedule
    return {
        "name": row.producer_name,
        "run": row.run,
        "schedule": describe_schedule(row),
        "policy": describe_policy(row),
        "paused": row.paused,
        "paused_by": row.paused_by if row.paused else None,
        "paused_at": row.paused_at if row.paused else None,
        "pause_note": row.pause_note if row.paused else None,
        # A paused producer's stored next run passes without a run: it has none.
        "next_run_at": None if row.paused else row.next_run_at,
        "last_run_at": row.last_run_at,
        "last_status": row.last_status,
        "consecutive_failures": row.consecutive_failures,
        "last_failure": last_failure(producer.last_error),
        "state": row.state,
    }


def run_view(run: RunRecord) -> dict[str, Any]:
    """One run of `runs --json`."""
    return {
        "producer": run.producer_name,
        "scheduled_for": run.scheduled_for,
        "trigger": run.trigger,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "status": run.status,
        "duration_ms": run.duration_ms,
        "attempt": run.attempt,
        "task_id": run.task_id,
        "error": run.error,
        "result": run.result,
    }


def outcomes_view(workflow: str, records: list[SlotOutcomeRecord]) -> JSONDict:
    """Slot-ledger rows as `runs NAME --outcomes --json` prints them."""
    return {"workflow": workflow, "outcomes": [asdict(record) for record in records]}


def triggered_view(workflow: str, run: RunRecord) -> dict[str, Any]:
    """A triggered run as `trigger --json` shows it."""
    return {
        "task_id": run.task_id,
        "workflow": workflow,
        "producer": run.producer_name,
        "scheduled_for": run.scheduled_for,
        "status": run.status,
        "duration_ms": run.duration_ms,
        "error": run.error,
        "result": run.result,
    }


def backfill_view(backfill: BackfillRecord, progress: BackfillProgress | None = None) -> JSONDict:
    """A backfill as `backfill --json` shows it, and its progress in `status --json`."""
    view: JSONDict = {
        "id": backfill.id,
        "producer": backfill.producer_name,
        "from": backfill.range_start.isoformat(),
        "to": backfill.range_end.isoformat(),
        "rate": backfill.rate,
        "status": backfill.status if progress is None else progress.status,
        "actor": loggable(backfill.actor),
        "note": None if backfill.note is None else loggable(backfill.note, 300),
        "slots": backfill.slot_count,
        "total": backfill.requested,
        "created_at": backfill.created_at.isoformat(),
    }
    if progress is not None:
        view |= {
            "done": progress.done,
            "failed": progress.failed,
            "pending": progress.pending,
            "running": progress.running,
        }
    return view


def plan_view(plan: DeployPlan) -> JSONDict:
    """One workflow's plan as `plan --json` prints it: the diff (each changed field's old and
    new value) and the next fire times of each producer given a fresh next run."""
    if plan.current is None:
        action, version = "create", None
    else:
        action, version = ("none" if plan.noop else "update"), plan.current.version
    return {
        "workflow": plan.workflow,
        "action": action,
        "version": version,
        **plan.diff.to_json(),
        "next_runs": {
            name: [moment.isoformat() for moment in moments]
            for name, moments in sorted(plan.upcoming(FIRE_TIMES).items())
        },
    }


def change_view(workflow: str, summary: ChangeSummary | None, error: str | None) -> JSONDict:
    """One lifecycle change's answer as `deploy | pause | resume ... --json` prints it."""
    return {
        "workflow": workflow,
        "ok": summary is not None,
        "summary": None if summary is None else summary.to_json(),
        "error": error,
    }


def history_view(workflow: str, entries: list[ChangeRecord]) -> JSONDict:
    """A workflow's changes, newest first, as `history --json` prints them."""
    return {
        "workflow": workflow,
        "changes": [
            {
                "version": entry.version,
                "changed_at": entry.changed_at,
                "action": entry.action.value,
                "producer": entry.producer,
                "actor": entry.actor,
                "note": entry.note,
                "diff": entry.diff,
                "definition": entry.definition,
            }
            for entry in entries
        ],
    }

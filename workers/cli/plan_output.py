"""How `drumline plan`, `deploy --plan` and `rollback --plan` show a plan, and `drumline diff`
a diff: per workflow, the producers added, changed (each field old -> new), removed and
unchanged, and the next fire times of each producer given a fresh next run."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from models.log_text import loggable
from models.records import JSONDict, WorkflowRecord
from models.workflow_diff import FieldChange, WorkflowDiff
from workers.cli.context import when
from workers.read_views import FIRE_TIMES
from workers.services.lifecycle import DeployPlan

VALUE_CHARS = 60


@dataclass(frozen=True)
class Removal:
    """A workflow `deploy --prune` deletes: in the database, with no file."""

    workflow: WorkflowRecord
    producers: Sequence[str]


def removal_view(removal: Removal) -> JSONDict:
    return {
        "workflow": removal.workflow.name,
        "action": "delete",
        "version": removal.workflow.version,
        "removed": sorted(removal.producers),
    }


def describe_plan(plan: DeployPlan) -> list[str]:
    """A plan in lines, for people."""
    if plan.current is None:
        head = f"{plan.workflow}: create"
    elif plan.noop:
        return [f"{plan.workflow} v{plan.current.version}: no change"]
    else:
        head = f"{plan.workflow}: update v{plan.current.version}"
    upcoming = plan.upcoming(FIRE_TIMES)
    lines = [head, *describe_diff(plan.diff)]
    for name, moments in sorted(upcoming.items()):
        shown = ", ".join(when(moment) for moment in moments) or "never (manual or exhausted)"
        lines.append(f"    next runs of {name}: {shown}")
    return lines


def describe_removal(removal: Removal) -> list[str]:
    producers = ", ".join(sorted(removal.producers)) or "none"
    return [
        f"{removal.workflow.name}: delete v{removal.workflow.version} (no file; --prune)",
        f"  - removed {producers}",
    ]


def describe_diff(diff: WorkflowDiff) -> list[str]:
    """A diff in lines: `+` added, `~` changed (with each field), `-` removed, `=` unchanged."""
    lines = [f"  ~ {key}: {_change(change)}" for key, change in diff.workflow_fields.items()]
    for producer in diff.producers:
        if producer.kind == "added":
            lines.append(f"  + added {producer.producer}")
        elif producer.kind == "removed":
            lines.append(f"  - removed {producer.producer}")
        elif producer.kind == "changed":
            fields = "; ".join(f"{key}: {_change(c)}" for key, c in producer.fields.items())
            lines.append(f"  ~ changed {producer.producer}: {fields}")
    if unchanged := diff.names("unchanged"):
        lines.append(f"  = unchanged {', '.join(unchanged)}")
    return lines


def summary_line(plans: Sequence[DeployPlan], removals: Sequence[Removal]) -> str:
    created = sum(plan.current is None for plan in plans)
    updated = sum(plan.current is not None and not plan.noop for plan in plans)
    unchanged = sum(plan.noop for plan in plans)
    return (
        f"Plan: {created} to create, {updated} to update, {len(removals)} to delete, "
        f"{unchanged} unchanged."
    )


def has_changes(plans: Sequence[DeployPlan], removals: Sequence[Removal]) -> bool:
    return bool(removals) or any(not plan.noop for plan in plans)


def _change(change: FieldChange) -> str:
    old, new = change
    return f"{_value(old)} -> {_value(new)}"


def _value(value: Any) -> str:
    text = json.dumps(value, sort_keys=True) if isinstance(value, Mapping) else repr(value)
    return loggable(text, VALUE_CHARS)

"""What a deploy changes, producer by producer: the one diff that the deploy task applies,
`drumline plan` shows and the history records.

Each producer compares its stored schedule row with the row its new definition calls for. A
change to a schedule field re-schedules it (a fresh next run); a change to a config field alone
keeps its next run and state.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from models.records import JSONDict, ScheduleRecord, ScheduleSpec

SCHEDULE_FIELDS = ("schedule_type", "schedule_value", "timezone")
CONFIG_FIELDS = ("run", "params", "timeout_seconds", "policy")

ProducerRow = ScheduleRecord | ScheduleSpec
# A changed field: (old value, new value).
FieldChange = tuple[Any, Any]


@dataclass(frozen=True)
class ProducerDiff:
    """One producer: `added`, `changed`, `removed` or `unchanged`, and its changed fields."""

    producer: str
    kind: str
    fields: Mapping[str, FieldChange] = field(default_factory=dict)

    @property
    def rescheduled(self) -> bool:
        """Whether the deploy gives it a fresh next run (new, or a schedule field changed)."""
        return self.kind == "added" or any(name in SCHEDULE_FIELDS for name in self.fields)


@dataclass(frozen=True)
class WorkflowDiff:
    """Every producer's diff, and the workflow's own fields (e.g. `description`) that change."""

    producers: tuple[ProducerDiff, ...]
    workflow_fields: Mapping[str, FieldChange] = field(default_factory=dict)

    def names(self, kind: str) -> list[str]:
        return sorted(diff.producer for diff in self.producers if diff.kind == kind)

    def to_json(self) -> JSONDict:
        """As the history stores it and `--json` prints it."""
        return {
            "workflow_fields": _fields_json(self.workflow_fields),
            "added": self.names("added"),
            "changed": {
                diff.producer: _fields_json(diff.fields)
                for diff in sorted(self.producers, key=lambda d: d.producer)
                if diff.kind == "changed"
            },
            "removed": self.names("removed"),
            "unchanged": self.names("unchanged"),
        }


def diff_producers(
    current: Mapping[str, ProducerRow], wanted: Mapping[str, ProducerRow]
) -> tuple[ProducerDiff, ...]:
    """Compare each producer's stored row (`current`) with the one wanted, by name."""
    diffs: list[ProducerDiff] = []
    for name in sorted(current.keys() | wanted.keys()):
        old, new = current.get(name), wanted.get(name)
        if old is None:
            diffs.append(ProducerDiff(name, "added"))
        elif new is None:
            diffs.append(ProducerDiff(name, "removed"))
        else:
            changed = {
                key: (getattr(old, key), getattr(new, key))
                for key in (*SCHEDULE_FIELDS, *CONFIG_FIELDS)
                if getattr(old, key) != getattr(new, key)
            }
            diffs.append(ProducerDiff(name, "changed" if changed else "unchanged", changed))
    return tuple(diffs)


def workflow_field_changes(old: JSONDict | None, new: JSONDict) -> dict[str, FieldChange]:
    """The top-level fields of two stored definitions that differ, producers aside."""
    before = old or {}
    return {
        key: (before.get(key), new.get(key))
        for key in sorted((before.keys() | new.keys()) - {"producers"})
        if old is not None and before.get(key) != new.get(key)
    }


def _fields_json(fields: Mapping[str, FieldChange]) -> JSONDict:
    return {key: {"old": old, "new": new} for key, (old, new) in sorted(fields.items())}

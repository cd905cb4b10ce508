"""What deploying a pasted definition would do, shown before it is sent: its producers against
the stored definition of the same workflow (added, changed, removed, unchanged), each schedule
in words. Read-only; the deploy task decides again under its lock."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from models.definitions import WorkflowDefinition
from models.records import WorkflowRecord
from models.schedules import ManualSchedule


@dataclass(frozen=True)
class ProducerPlan:
    name: str
    change: str  # added, changed, removed, unchanged
    schedule: str


@dataclass(frozen=True)
class DeployPlan:
    workflow: str
    current_version: int | None  # None: a new workflow
    producers: list[ProducerPlan] = field(default_factory=list)
    description_changed: bool = False

    @property
    def noop(self) -> bool:
        return not self.description_changed and all(p.change == "unchanged" for p in self.producers)


def plan_deploy(definition: WorkflowDefinition, current: WorkflowRecord | None) -> DeployPlan:
    new: dict[str, Any] = definition.model_dump(mode="json")
    old: dict[str, Any] = current.definition if current is not None else {}
    old_producers: dict[str, Any] = old.get("producers", {})
    producers: list[ProducerPlan] = []
    for name, spec in sorted(definition.producers.items()):
        words = (spec.schedule or ManualSchedule()).describe()
        if name not in old_producers:
            change = "added"
        elif old_producers[name] != new["producers"][name]:
            change = "changed"
        else:
            change = "unchanged"
        producers.append(ProducerPlan(name, change, words))
    producers += [
        ProducerPlan(name, "removed", "-")
        for name in sorted(old_producers.keys() - definition.producers.keys())
    ]
    return DeployPlan(
        workflow=definition.name,
        current_version=current.version if current is not None else None,
        producers=producers,
        description_changed=current is not None and old.get("description") != new["description"],
    )

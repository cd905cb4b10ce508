"""The lifecycle change summary: its JSON form, as the task returns it and the CLI reads it."""

from __future__ import annotations

import json

import pytest

from models.vocabulary import WorkflowStatus
from workers.cli.lifecycle_commands import describe_summary
from workers.services.lifecycle import ChangeSummary, ProducerChanges

CASES = [
    (ChangeSummary("w", 1, ProducerChanges(added=["b", "a"]), False), "w v1: added a, b"),
    (
        ChangeSummary("w", 2, ProducerChanges(changed=["x"], unchanged=["y", "z"]), False),
        "w v2: changed x; 2 unchanged",
    ),
    (ChangeSummary("w", 2, ProducerChanges(unchanged=["y"]), True), "w v2: no change"),
    (
        ChangeSummary("w", 3, ProducerChanges(unchanged=["y"]), False, WorkflowStatus.PAUSED),
        "w v3: paused",
    ),
    (
        ChangeSummary(
            "w", 4, ProducerChanges(unchanged=["y"]), False, WorkflowStatus.ACTIVE, ("y",)
        ),
        "w v4: active",
    ),
    (ChangeSummary("w", 4, ProducerChanges(removed=["y"]), False, deleted=True), "w v4: deleted"),
]


@pytest.mark.parametrize(("summary", "line"), CASES)
def test_the_cli_reads_back_what_the_task_returns(summary: ChangeSummary, line: str) -> None:
    sent = json.loads(json.dumps(summary.to_json()))  # through the JSON result backend
    received = ChangeSummary.from_json(sent)
    assert received.to_json() == sent
    assert describe_summary(received) == line


def test_the_json_form_has_only_the_keys_that_apply() -> None:
    deployed = ChangeSummary("w", 1, ProducerChanges(added=["b", "a"]), False).to_json()
    assert deployed == {
        "workflow": "w",
        "version": 1,
        "added": ["a", "b"],
        "changed": [],
        "removed": [],
        "unchanged": [],
        "noop": False,
    }
    resumed = ChangeSummary(
        "w", 2, ProducerChanges(), False, WorkflowStatus.ACTIVE, ("p",)
    ).to_json()
    assert (resumed["status"], resumed["rescheduled"], "deleted" in resumed) == (
        "active",
        ["p"],
        False,
    )

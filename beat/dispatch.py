"""The `drumline.run_producer` message beat sends for a claimed slot.

Beat sends the task by name and never imports `workers/`, which defines it: the name, queue and
keyword arguments below are the contract with `workers/run_tasks.py`.
"""

from __future__ import annotations

from datetime import UTC
from typing import Any

from models.records import ClaimedSlot

RUN_PRODUCER = "drumline.run_producer"
PRODUCERS_QUEUE = "producers"


def slot_task_id(slot: ClaimedSlot) -> str:
    """`<workflow>.<producer>@<scheduled_for>`: tells in Flower and logs which slot a task runs."""
    return f"{slot.workflow_name}.{slot.producer_name}@{_scheduled_for(slot)}"


def run_producer_kwargs(slot: ClaimedSlot) -> dict[str, Any]:
    """JSON-safe keyword arguments of `drumline.run_producer`."""
    return {
        "workflow_id": slot.workflow_id,
        "workflow": slot.workflow_name,
        "producer": slot.producer_name,
        "scheduled_for": _scheduled_for(slot),
        "claim_token": slot.claim_token,
    }


def send_run_producer(app: Any, slot: ClaimedSlot, producer: Any) -> None:
    """Publish one slot's task on `producer`, so a whole batch shares one broker connection.

    The message expires with the claim: one not started within the lease is dropped, and beat
    claims and sends the slot again.
    """
    kwargs = run_producer_kwargs(slot)
    app.send_task(
        RUN_PRODUCER,
        kwargs=kwargs,
        # Precomputed reprs for Flower and logs: Celery's saferepr of every message is costly.
        argsrepr="()",
        kwargsrepr=repr(kwargs),
        task_id=slot_task_id(slot),
        queue=PRODUCERS_QUEUE,
        expires=slot.claimed_until,
        producer=producer,
        serializer="json",
        # Runs are recorded in the database. Expecting a result would make the Redis result
        # backend subscribe to (and drop) a result channel for every message sent.
        ignore_result=True,
    )


def _scheduled_for(slot: ClaimedSlot) -> str:
    return slot.scheduled_for.astimezone(UTC).isoformat()

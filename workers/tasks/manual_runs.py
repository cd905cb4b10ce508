"""A manual run, as `drumline trigger` and the web's trigger action request it.

The request is recorded first, as a pending run row with a random token; the message carries
that token, and a worker runs a manual slot only if the database holds a pending request with
the same slot and token. So a message nobody recorded, or one delivered twice, runs nothing.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from beat.dispatch import run_producer_call
from models.records import RunRecord, WorkflowRecord
from models.run_store import RunStore
from models.types import utc_now

TOKEN_BYTES = 16

# Sends the run task: called with its task id and keyword arguments.
Send = Callable[[str, dict[str, Any]], object]


def request_manual_run(
    engine: Engine, workflow: WorkflowRecord, producer: str, send: Send
) -> RunRecord | None:
    """Record a pending run of `producer` now and send its task; None if its slot has a run
    already. A send that raises leaves no request behind."""
    runs = RunStore(engine)
    slot: datetime = utc_now()
    token = secrets.token_hex(TOKEN_BYTES)
    task_id, kwargs = run_producer_call(
        workflow.id, workflow.name, producer, slot, trigger_token=token
    )
    request = runs.request_trigger(
        workflow_id=workflow.id,
        producer_name=producer,
        scheduled_for=slot,
        trigger_token=token,
        task_id=task_id,
        now=slot,
    )
    if request is None:
        return None
    try:
        send(task_id, kwargs)
    except BaseException:
        runs.withdraw_trigger(request.id)  # never sent: leave no request behind
        raise
    return request

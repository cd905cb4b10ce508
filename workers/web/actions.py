"""The web's actions, only through the `Drumline` client, as the CLI's: deploy, pause and resume
as lifecycle tasks and a recorded manual run, each with the web user as the actor, so every
change lands in the history. Blocking: the pages call these in a thread.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from models.definitions import WorkflowDefinition
from models.errors import BrokerUnreachableError, DrumlineError, WorkflowNotFoundError
from models.log_text import loggable
from models.records import JSONDict, RunRecord
from workers.client import Drumline, PendingChange
from workers.read_views import change_view
from workers.services.lifecycle import ChangeSummary

logger = logging.getLogger("drumline.web")

# How long a page waits for a lifecycle task's answer, or for a triggered run to finish,
# before it shows what it knows (the task id; the producer page shows the rest).
ANSWER_WAIT_S = 15.0
RUN_WAIT_S = 10.0


@dataclass(frozen=True)
class Outcome:
    """A lifecycle change's answer: its summary, or why it was refused."""

    workflow: str
    summary: ChangeSummary | None
    error: str | None
    task_id: str | None

    @property
    def ok(self) -> bool:
        return self.summary is not None

    def as_json(self) -> JSONDict:
        """As `drumline pause --json` prints one item."""
        return change_view(self.workflow, self.summary, self.error)


# A pause or resume: the client, the workflow's name, the one producer (None: all) and the note.
Change = Callable[[Drumline, str, str | None, str | None], "Outcome"]


def http_status(error: DrumlineError) -> int:
    """The HTTP status of a refusal: the broker down, no such workflow, or a conflict."""
    if isinstance(error, BrokerUnreachableError):
        return 503
    if isinstance(error, WorkflowNotFoundError):
        return 404
    return 409


def pause(client: Drumline, name: str, producer: str | None, note: str | None) -> Outcome:
    return _change(
        client,
        "pause",
        _target(name, producer),
        note,
        lambda: client.send_pause(name, producer=producer, note=note),
        name,
    )


def resume(client: Drumline, name: str, producer: str | None, note: str | None) -> Outcome:
    return _change(
        client,
        "resume",
        _target(name, producer),
        note,
        lambda: client.send_resume(name, producer=producer, note=note),
        name,
    )


def deploy(client: Drumline, definition: WorkflowDefinition, note: str | None) -> Outcome:
    return _change(
        client,
        "deploy",
        f"workflow {loggable(definition.name)}",
        note,
        lambda: client.send_deploy(definition, note=note),
        definition.name,
    )


def trigger(client: Drumline, name: str, producer: str) -> RunRecord:
    """Run `producer` now, then wait a little for it to finish: the run as it stands."""
    logger.info(
        "manual run of %s.%s requested from the web, by %s",
        loggable(name),
        loggable(producer),
        client.actor,
    )
    return client.wait_for_run(client.trigger(name, producer), RUN_WAIT_S)


def _target(name: str, producer: str | None) -> str:
    """What a change is of, for the log: the workflow, or one producer of it (escaped)."""
    if producer is None:
        return f"workflow {loggable(name)}"
    return f"producer {loggable(name)}.{loggable(producer)}"


def _change(
    client: Drumline,
    verb: str,
    target: str,
    note: str | None,
    send: Callable[[], PendingChange],
    workflow: str,
) -> Outcome:
    """Send a change and wait for its answer; a broker that cannot be reached is raised (nothing
    was sent), any other refusal is the outcome."""
    logger.info(
        "%s of %s requested from the web%s, by %s",
        verb,
        target,
        f" with the note {loggable(note)}" if note else "",
        client.actor,
    )
    task_id: str | None = None
    try:
        pending = send()
        task_id = pending.task_id
        return Outcome(workflow, pending.wait(ANSWER_WAIT_S), None, task_id)
    except BrokerUnreachableError:
        raise
    except DrumlineError as error:
        return Outcome(workflow, None, str(error), task_id)

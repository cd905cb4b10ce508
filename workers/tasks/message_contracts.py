"""What each task accepts from the broker: one contract per task name, in one table.

Anyone who can publish to the broker can send any task name with any arguments. The worker's
main process checks every task message against its contract here (see `message_boundary`),
before the pool pickles the arguments and before anything touches the database. A task with no
entry in `CONTRACTS` is refused outright: a new drumline task must add its contract below, and
`tests/test_message_contracts.py` fails until it does.

A contract bounds the arguments as plain JSON (`models.plain_json`), then validates them
strictly with pydantic: `true` is not 1, `"1"` is not 1, unknown or extra arguments are refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from beat.dispatch import RUN_PRODUCER
from models.change_store import MAX_ACTOR_CHARS, MAX_NOTE_CHARS, MAX_VERSION, author_problem
from models.definitions import SLUG_PATTERN
from models.plain_json import JsonBounds, PlainJsonError, check_plain_json
from workers.tasks.celery_config import PRUNE_RUNS

# Deeper than any valid definition: a producer's params sit at
# definition.producers.<name>.params and may themselves nest JsonBounds().max_depth (32) levels.
MESSAGE_DEPTH = 40
# Celery's own headers (id, task, eta, argsrepr, ...) are small and flat.
HEADER_BOUNDS = JsonBounds(max_depth=8, max_bytes=16 * 1024)
MAX_TASK_ID_CHARS = 255
MAX_TOKEN_CHARS = 128
MAX_INSTANT_CHARS = 64
# A definition file may be 1 MiB; as JSON it can grow, so a deploy message may be 2 MiB.
DEPLOY_MAX_BYTES = 2 * 1024 * 1024
SMALL_MAX_BYTES = 4 * 1024
# A lifecycle change by name carries its author too: a note of MAX_NOTE_CHARS, escaped.
AUTHORED_MAX_BYTES = 16 * 1024


class RefusedMessage(ValueError):
    """A task message the worker will not run; the text says what is wrong with it."""


class _Arguments(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


# A workflow or producer name, by the definitions' own rule.
Slug = Annotated[str, StringConstraints(pattern=SLUG_PATTERN)]


class RunProducerArguments(_Arguments):
    """`drumline.run_producer`, as `beat.dispatch.run_producer_call` builds it."""

    workflow_id: int = Field(ge=1, le=2**63 - 1)
    workflow: Slug
    producer: Slug
    scheduled_for: str = Field(max_length=MAX_INSTANT_CHARS)
    claim_token: str | None = Field(default=None, min_length=1, max_length=MAX_TOKEN_CHARS)
    trigger_token: str | None = Field(default=None, min_length=1, max_length=MAX_TOKEN_CHARS)

    @field_validator("scheduled_for")
    @classmethod
    def _an_instant_with_a_zone(cls, text: str) -> str:
        try:
            instant = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError("is not an ISO-8601 instant") from None
        if instant.tzinfo is None:
            raise ValueError("has no time zone")
        try:
            instant.astimezone(UTC)
        except OverflowError:
            raise ValueError("is out of range in UTC") from None
        return text

    @model_validator(mode="after")
    def _one_kind_of_token(self) -> RunProducerArguments:
        if self.claim_token is not None and self.trigger_token is not None:
            raise ValueError("give claim_token or trigger_token, not both")
        return self


class _AuthoredArguments(_Arguments):
    """Who makes a lifecycle change and why, as its history entry will name them."""

    actor: str | None = Field(default=None, max_length=MAX_ACTOR_CHARS)
    note: str | None = Field(default=None, max_length=MAX_NOTE_CHARS)

    @model_validator(mode="after")
    def _recordable_author(self) -> _AuthoredArguments:
        if self.note is not None and self.actor is None:
            raise ValueError("a note needs an actor")
        problem = author_problem(self.actor, self.note) if self.actor is not None else None
        if problem is not None:
            raise ValueError(problem)
        return self


class DeployArguments(_AuthoredArguments):
    """`drumline.deploy_workflow`: the definition itself is validated by the deploy."""

    definition: dict[str, Any]


class WorkflowNameArguments(_AuthoredArguments):
    """`drumline.pause_workflow`, `resume_workflow` and `delete_workflow`."""

    name: Slug


class RollbackArguments(_AuthoredArguments):
    """`drumline.rollback_workflow`: a workflow and a version of its history."""

    name: Slug
    version: int = Field(ge=1, le=MAX_VERSION)


class ProducerArguments(_AuthoredArguments):
    """`drumline.pause_producer` and `drumline.resume_producer`: one producer of a workflow,
    who pauses or resumes it and why."""

    name: Slug
    producer: Slug


class NoArguments(_Arguments):
    """`drumline.prune_runs`, which beat sends with none."""


@dataclass(frozen=True)
class TaskContract:
    """A task's arguments: their model, which of them may come positionally (in order), and
    how large the arguments may be as JSON."""

    arguments: type[_Arguments]
    max_bytes: int
    positional: tuple[str, ...] = ()

    @property
    def bounds(self) -> JsonBounds:
        return JsonBounds(max_depth=MESSAGE_DEPTH, max_bytes=self.max_bytes)

    @property
    def max_body_bytes(self) -> int:
        """The encoded body's limit, checked before decoding it: JSON escapes can take six
        bytes per byte of value (`\\u001f`), and the body also carries Celery's small extras."""
        return 6 * self.max_bytes + 1024


CONTRACTS: dict[str, TaskContract] = {
    RUN_PRODUCER: TaskContract(RunProducerArguments, SMALL_MAX_BYTES),
    "drumline.deploy_workflow": TaskContract(
        DeployArguments, DEPLOY_MAX_BYTES, positional=("definition",)
    ),
    "drumline.pause_workflow": TaskContract(
        WorkflowNameArguments, AUTHORED_MAX_BYTES, positional=("name",)
    ),
    "drumline.resume_workflow": TaskContract(
        WorkflowNameArguments, AUTHORED_MAX_BYTES, positional=("name",)
    ),
    "drumline.delete_workflow": TaskContract(
        WorkflowNameArguments, AUTHORED_MAX_BYTES, positional=("name",)
    ),
    "drumline.rollback_workflow": TaskContract(
        RollbackArguments, AUTHORED_MAX_BYTES, positional=("name", "version")
    ),
    "drumline.pause_producer": TaskContract(
        ProducerArguments, AUTHORED_MAX_BYTES, positional=("name", "producer")
    ),
    "drumline.resume_producer": TaskContract(
        ProducerArguments, AUTHORED_MAX_BYTES, positional=("name", "producer")
    ),
    PRUNE_RUNS: TaskContract(NoArguments, SMALL_MAX_BYTES),
}


def contract_of(task: str) -> TaskContract:
    """The task's contract; RefusedMessage if the task has none (nothing runs without one)."""
    contract = CONTRACTS.get(task)
    if contract is None:
        raise RefusedMessage("the worker accepts no message for this task (it has no contract)")
    return contract


def check_arguments(task: str, args: Any, kwargs: Any) -> _Arguments:
    """The task's arguments, validated; RefusedMessage naming the first problem otherwise."""
    contract = contract_of(task)
    named = _bind(contract, args, kwargs)
    try:
        check_plain_json(named, contract.bounds, path="arguments")
    except PlainJsonError as exc:
        raise RefusedMessage(str(exc)) from None
    try:
        return contract.arguments.model_validate(named)
    except ValidationError as exc:
        raise RefusedMessage(_describe(exc)) from None


def _bind(contract: TaskContract, args: Any, kwargs: Any) -> dict[str, Any]:
    """Positional and keyword arguments as one mapping of names, as a call would bind them."""
    if not isinstance(args, list) or not isinstance(kwargs, dict):
        raise RefusedMessage("arguments must be a JSON array and keyword arguments an object")
    if len(args) > len(contract.positional):
        raise RefusedMessage(
            f"takes {len(contract.positional)} positional argument(s), not {len(args)}"
        )
    named = dict(zip(contract.positional, args, strict=False))
    twice = sorted(set(named) & set(kwargs))
    if twice:
        raise RefusedMessage(f"argument {twice[0]!r} given both by position and by name")
    return {**named, **kwargs}


def _describe(error: ValidationError, most: int = 3) -> str:
    """Pydantic's problems on one line, without the (untrusted, maybe huge) input values."""
    problems = [
        f"{'.'.join(str(part)[:40] for part in item['loc']) or 'arguments'}: "
        + item["msg"].removeprefix("Value error, ")
        for item in error.errors(include_url=False, include_input=False)
    ]
    more = f" (and {len(problems) - most} more)" if len(problems) > most else ""
    return "; ".join(problems[:most]) + more

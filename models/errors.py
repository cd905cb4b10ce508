"""Every refusal drumline raises on purpose, under one root.

`except DrumlineError` catches bad input and refused changes, never a bug or a library's error.
Each message names what is wrong. The errors that are also `ValueError`s stay so, for callers
(and pydantic validators) that catch that.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import ClassVar

from models.records import JSONDict


class DrumlineError(Exception):
    """The root of drumline's own errors."""


class ScheduleError(DrumlineError, ValueError):
    """A schedule that cannot be used; the message quotes the input and says why."""


class ScheduleFieldError(ScheduleError):
    """A schedule field that cannot be used; `path` is its dotted place in the producer
    (`schedules.1.dst.repeated`), so a definition problem names it."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(message)
        self.path = path


class SettingsError(DrumlineError, ValueError):
    """A DRUMLINE_* variable holds a value drumline cannot use."""


@dataclass(frozen=True)
class DefinitionProblem:
    file: str
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.path or '(top level)'}: {self.message}"


class DefinitionError(DrumlineError, ValueError):
    """One or more problems in one or more definitions."""

    def __init__(self, problems: Iterable[DefinitionProblem]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(problem) for problem in self.problems))

    def to_json(self) -> dict[str, list[dict[str, str]]]:
        return {
            "errors": [
                {"file": p.file, "path": p.path, "message": p.message} for p in self.problems
            ]
        }


class LifecycleError(DrumlineError):
    """A change that was refused; nothing of it was written.

    Celery keeps a failed task's exception in the JSON result backend as its type, module and
    `args`, and rebuilds it as `cls(*args)`: so `args` is exactly `(message, details)`, both
    JSON-serialisable, and no subclass changes the constructor.
    """

    code: ClassVar[str] = "error"

    def __init__(self, message: str, details: JSONDict | None = None) -> None:
        super().__init__(message, details if details is not None else {})

    @property
    def message(self) -> str:
        return str(self.args[0])

    @property
    def details(self) -> JSONDict:
        details: JSONDict = self.args[1]
        return details

    def __str__(self) -> str:
        return self.message


class InvalidDefinitionError(LifecycleError):
    """The definition failed validation; `details["errors"]` lists each problem and its path."""

    code = "invalid"


class WorkflowBusyError(LifecycleError):
    """Another change held the workflow's lock for longer than we may wait."""

    code = "busy"


class VersionConflictError(LifecycleError):
    """The workflow changed between our read and our write; the change was rolled back."""

    code = "conflict"


class WorkflowNotFoundError(LifecycleError):
    code = "not_found"


class VersionNotFoundError(LifecycleError):
    """A rollback or diff named a version the workflow's history does not hold (never made, or
    past the history's retention)."""

    code = "no_such_version"


class NoAnswerError(LifecycleError):
    """No worker answered a change in time; it may still be applied (see `drumline history`)."""

    code = "no_answer"


class TriggerRefusedError(DrumlineError):
    """A trigger was refused before anything was sent (a paused workflow, no such producer)."""


class TriggerTimeError(TriggerRefusedError):
    """A trigger's requested time cannot be a one-off slot (passed, too far ahead, or one of
    the producer's scheduled slots)."""


class BackfillRangeError(DrumlineError, ValueError):
    """A backfill's range cannot be run; `argument` names the command-line argument at fault
    (`--from`, `--to`, `--from/--to`, `--rate`)."""

    def __init__(self, argument: str, message: str) -> None:
        super().__init__(f"{argument}: {message}")
        self.argument = argument
        self.reason = message


class BrokerUnreachableError(DrumlineError):
    """The broker could not be reached, so nothing was sent."""


class InvalidAuthorError(DrumlineError, ValueError):
    """An actor or note that the history cannot record; the message names the field."""


class ProducerNotFoundError(LifecycleError):
    """The workflow has no producer of that name."""

    code = "not_found"

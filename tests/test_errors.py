"""drumline's errors: one root, and the shapes the JSON result backend and callers rely on."""

from __future__ import annotations

import pytest

from models.errors import (
    DefinitionError,
    DefinitionProblem,
    DrumlineError,
    InvalidDefinitionError,
    LifecycleError,
    ScheduleError,
    SettingsError,
    VersionConflictError,
    WorkflowBusyError,
    WorkflowNotFoundError,
)
from models.schedules import parse_interval
from workers.settings import Settings

LIFECYCLE_ERRORS = [
    InvalidDefinitionError,
    WorkflowBusyError,
    VersionConflictError,
    WorkflowNotFoundError,
]


def test_every_refusal_is_a_drumline_error_and_the_input_ones_stay_value_errors() -> None:
    for input_error in (ScheduleError, SettingsError, DefinitionError):
        assert issubclass(input_error, DrumlineError)
        assert issubclass(input_error, ValueError)
    for lifecycle_error in [LifecycleError, *LIFECYCLE_ERRORS]:
        assert issubclass(lifecycle_error, DrumlineError)
    with pytest.raises(DrumlineError, match="interval '5x' is not understood"):
        parse_interval("5x")
    with pytest.raises(DrumlineError, match="DRUMLINE_LEASE_SECONDS"):
        Settings.from_env({"DRUMLINE_LEASE_SECONDS": "soon"})


@pytest.mark.parametrize("error_class", LIFECYCLE_ERRORS)
def test_a_lifecycle_error_rebuilds_from_its_args_as_celery_does(
    error_class: type[LifecycleError],
) -> None:
    """The JSON result backend keeps `args` and rebuilds the error as `cls(*args)`."""
    error = error_class("workflow 'w' is busy", {"workflow": "w"})
    rebuilt = error_class(*error.args)
    assert (str(rebuilt), rebuilt.details, rebuilt.code) == (
        str(error),
        {"workflow": "w"},
        error.code,
    )


def test_a_definition_error_lists_every_problem() -> None:
    error = DefinitionError([DefinitionProblem("f.yaml", "name", "is required")] * 2)
    assert str(error) == "f.yaml: name: is required\nf.yaml: name: is required"
    assert len(error.to_json()["errors"]) == 2

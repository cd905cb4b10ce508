"""Every CLI number and instant has a bound: refused with exit 2 and a message naming the
option, before anything is read or sent (issue 10)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from workers.cli.main import cli

TIMEOUT_COMMANDS = [
    ["deploy", "missing.yaml"],
    ["pause", "wf"],
    ["resume", "wf"],
    ["delete", "wf"],
    ["rollback", "wf", "--to", "1"],
    ["trigger", "wf", "p", "--wait"],
]
BAD_SECONDS = ["nan", "NaN", "inf", "-inf", "-1", "0", "0.05", "1e999", "3601", "99999999999", "x"]


@pytest.mark.parametrize("command", TIMEOUT_COMMANDS, ids=lambda c: c[0])
@pytest.mark.parametrize("value", BAD_SECONDS)
def test_timeout_must_be_finite_and_within_an_hour(command: list[str], value: str) -> None:
    result = CliRunner().invoke(cli, [*command, "--timeout", value])
    assert result.exit_code == 2, result.output
    assert "Invalid value for '--timeout'" in result.stderr
    assert "is not a number of seconds" in result.stderr
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    "value",
    [
        "9999-12-31T23:59:59Z",
        "9999-12-31T23:59:59-01:00",
        "0001-01-01T00:00:00+01:00",
        "3000-01-01T00:00:00Z",
        "1969-12-31T23:59:59Z",
    ],
)
def test_validate_after_is_refused_outside_its_range(value: str) -> None:
    result = CliRunner().invoke(cli, ["validate", "x.yaml", "--after", value])
    assert result.exit_code == 2, result.output
    assert "Invalid value for '--after'" in result.stderr
    assert "is out of range" in result.stderr


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["validate", "x.yaml", "--next", "1001"], "--next"),
        (["validate", "x.yaml", "--next", "9" * 5000], "--next"),
        (["runs", "wf", "--limit", "10001"], "--limit"),
        (["runs", "wf", "--limit", "0"], "--limit"),
        (["runs", "wf", "--limit", "9" * 5000], "--limit"),
    ],
)
def test_counts_have_a_maximum(args: list[str], option: str) -> None:
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    assert f"Invalid value for '{option}'" in result.stderr


def test_limits_are_shown_in_help() -> None:
    assert "1<=x<=10000" in CliRunner().invoke(cli, ["runs", "--help"]).output
    assert "at most 1000" in CliRunner().invoke(cli, ["validate", "--help"]).output
    assert "0.1 to 3600" in CliRunner().invoke(cli, ["pause", "--help"]).output

"""Workflow definitions (models/definitions.py): validation, problem paths, and file loading."""

from __future__ import annotations

import copy
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from models.definitions import (
    MAX_DEFINITION_BYTES,
    ProducerDefinition,
    WorkflowDefinition,
    load_definition_file,
    load_definition_files,
    parse_definition,
)
from models.errors import DefinitionError, DefinitionProblem
from models.schedules import CronSchedule, IntervalSchedule

KNOWN = ["demo.noop", "demo.counter", "prices.poll"]

VALID: dict[str, Any] = {
    "name": "market-data",
    "description": "Prices and a nightly report.",
    "producers": {
        "poll-prices": {
            "run": "prices.poll",
            "interval": "90m",
            "params": {"symbols": ["AAPL", "MSFT"], "depth": 3, "nested": {"x": None}},
            "timeout": "1m30s",
        },
        "nightly_report": {
            "run": "demo.counter",
            "cron": "30 2 * * *",
            "timezone": "Europe/Berlin",
        },
        "utc-cron": {"run": "demo.noop", "cron": "*/10 * * * * *"},
        "by-hand": {"run": "demo.noop"},
    },
}

VALID_YAML = """\
# A workflow
name: market-data
description: Prices and a nightly report.
producers:
  poll-prices:
    run: prices.poll
    interval: 90m
    params:
      symbols: [AAPL, MSFT]
      depth: 3
      nested: {x: null}
    timeout: 1m30s
  nightly_report:
    run: demo.counter
    cron: "30 2 * * *"
    timezone: Europe/Berlin
  utc-cron:
    run: demo.noop
    cron: "*/10 * * * * *"
  by-hand:
    run: demo.noop
"""


def problems_of(data: object, **kwargs: Any) -> list[DefinitionProblem]:
    with pytest.raises(DefinitionError) as caught:
        parse_definition(data, source="wf.yaml", **kwargs)
    problems = list(caught.value.problems)
    assert problems, "a DefinitionError must carry at least one problem"
    assert all(p.file == "wf.yaml" for p in problems)
    return problems


def with_producer(**fields: Any) -> dict[str, Any]:
    return {"name": "wf", "producers": {"p": fields}}


def with_workflow(**fields: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"name": "wf", "producers": {"p": {"run": "demo.noop"}}}
    data.update(fields)
    return {k: v for k, v in data.items() if v is not _DROP}


_DROP = object()


# --------------------------------------------------------------------------------------------
# Valid definitions
# --------------------------------------------------------------------------------------------


def test_valid_definition_parses() -> None:
    definition = parse_definition(copy.deepcopy(VALID), source="x.yaml", known_producers=KNOWN)
    assert isinstance(definition, WorkflowDefinition)
    assert definition.name == "market-data"
    assert definition.description == "Prices and a nightly report."
    assert list(definition.producers) == ["poll-prices", "nightly_report", "utc-cron", "by-hand"]

    poll = definition.producers["poll-prices"]
    assert poll.run == "prices.poll"
    assert poll.schedule == IntervalSchedule(timedelta(minutes=90))
    assert poll.params == {"symbols": ["AAPL", "MSFT"], "depth": 3, "nested": {"x": None}}
    assert poll.timeout_seconds == 90.0

    nightly = definition.producers["nightly_report"]
    assert nightly.schedule == CronSchedule("30 2 * * *", "Europe/Berlin")
    assert nightly.schedule.next_after(datetime(2026, 10, 24, 12, tzinfo=UTC)) == datetime(
        2026, 10, 25, 0, 30, tzinfo=UTC
    )
    assert nightly.timeout_seconds is None
    assert nightly.params == {}

    assert definition.producers["utc-cron"].schedule == CronSchedule("*/10 * * * * *", "UTC")
    assert definition.producers["by-hand"].schedule is None


def test_valid_definition_round_trips_through_model_dump() -> None:
    definition = parse_definition(copy.deepcopy(VALID), known_producers=KNOWN)
    dumped = definition.model_dump(mode="json")
    # JSON-serialisable, as stored in workflows.definition.
    restored = parse_definition(json.loads(json.dumps(dumped)), known_producers=KNOWN)
    assert restored == definition
    assert restored.model_dump(mode="json") == dumped


def test_minimal_definition_gets_defaults() -> None:
    definition = parse_definition({"name": "w", "producers": {"p": {"run": "demo.noop"}}})
    assert definition.description == ""
    producer = definition.producers["p"]
    assert (producer.interval, producer.cron, producer.timezone, producer.timeout) == (
        None,
        None,
        None,
        None,
    )
    assert producer.schedule is None
    assert producer.timeout_seconds is None


def test_known_producers_none_skips_the_registry_check() -> None:
    definition = parse_definition(with_producer(run="not.registered.anywhere"))
    assert definition.producers["p"].run == "not.registered.anywhere"


@pytest.mark.parametrize(
    ("timeout", "seconds"),
    [("1s", 1), ("30s", 30), ("1m30s", 90), ("1h", 3600), ("1d", 86400), ("23h59m59s", 86399)],
)
def test_timeout_seconds(timeout: str, seconds: float) -> None:
    definition = parse_definition(with_producer(run="demo.noop", interval="5m", timeout=timeout))
    assert definition.producers["p"].timeout_seconds == seconds


@pytest.mark.parametrize("name", ["a", "0", "wf", "my-workflow_2", "a" * 63, "0abc", "a-", "a_"])
def test_valid_workflow_and_producer_names(name: str) -> None:
    definition = parse_definition({"name": name, "producers": {name: {"run": "demo.noop"}}})
    assert definition.name == name
    assert list(definition.producers) == [name]


@pytest.mark.parametrize("run", ["demo", "demo.noop", "a.b.c", "a_b.c-d", "x1.y_2"])
def test_valid_run_names(run: str) -> None:
    assert parse_definition(with_producer(run=run)).producers["p"].run == run


def test_models_are_frozen() -> None:
    definition = parse_definition(copy.deepcopy(VALID))
    with pytest.raises(ValueError):
        definition.name = "other"  # type: ignore[misc]
    with pytest.raises(ValueError):
        definition.producers["by-hand"].run = "demo.counter"  # type: ignore[misc]


def test_producer_definition_is_strict() -> None:
    with pytest.raises(ValueError):
        ProducerDefinition.model_validate({"run": "demo.noop", "interval": 30})


# --------------------------------------------------------------------------------------------
# Invalid definitions: (data, known_producers, expected path, message fragment)
# --------------------------------------------------------------------------------------------

INVALID: list[tuple[str, object, list[str] | None, str, str]] = [
    # --- schedules
    (
        "bad-cron-minute",
        with_producer(run="demo.noop", cron="61 * * * *"),
        None,
        "producers.p.cron",
        "minute field '61'",
    ),
    (
        "bad-cron-fields",
        with_producer(run="demo.noop", cron="* * *"),
        None,
        "producers.p.cron",
        "it has 3 fields",
    ),
    (
        "bad-cron-garbage",
        with_producer(run="demo.noop", cron="every day"),
        None,
        "producers.p.cron",
        "'every day'",
    ),
    (
        "bad-cron-alias",
        with_producer(run="demo.noop", cron="@fortnightly"),
        None,
        "producers.p.cron",
        "unknown alias",
    ),
    (
        "empty-cron",
        with_producer(run="demo.noop", cron=""),
        None,
        "producers.p.cron",
        "cron expression is empty",
    ),
    (
        "interval-and-cron",
        with_producer(run="demo.noop", interval="5m", cron="* * * * *"),
        None,
        "producers.p",
        "either interval or cron, not both",
    ),
    (
        "bad-interval",
        with_producer(run="demo.noop", interval="5x"),
        None,
        "producers.p.interval",
        "interval '5x' is not understood",
    ),
    (
        "zero-interval",
        with_producer(run="demo.noop", interval="0s"),
        None,
        "producers.p.interval",
        "is zero",
    ),
    (
        "interval-no-unit",
        with_producer(run="demo.noop", interval="30"),
        None,
        "producers.p.interval",
        "has no unit",
    ),
    (
        "interval-too-long",
        with_producer(run="demo.noop", interval="366d"),
        None,
        "producers.p.interval",
        "longer than the maximum",
    ),
    (
        "unknown-timezone",
        with_producer(run="demo.noop", cron="0 9 * * *", timezone="Mars/Base"),
        None,
        "producers.p.timezone",
        "unknown timezone 'Mars/Base'",
    ),
    (
        "bad-timezone-case",
        with_producer(run="demo.noop", cron="0 9 * * *", timezone="utc"),
        None,
        "producers.p.timezone",
        "unknown timezone 'utc'",
    ),
    (
        "empty-timezone",
        with_producer(run="demo.noop", cron="0 9 * * *", timezone=""),
        None,
        "producers.p.timezone",
        "timezone is empty",
    ),
    (
        "timezone-too-long",
        with_producer(run="demo.noop", cron="0 9 * * *", timezone="A" * 65),
        None,
        "producers.p.timezone",
        "at most 64 characters",
    ),
    (
        "timezone-with-interval",
        with_producer(run="demo.noop", interval="5m", timezone="UTC"),
        None,
        "producers.p.timezone",
        "timezone applies to cron schedules only",
    ),
    (
        "timezone-without-schedule",
        with_producer(run="demo.noop", timezone="UTC"),
        None,
        "producers.p.timezone",
        "no cron schedule",
    ),
    (
        "cron-too-long",
        with_producer(run="demo.noop", cron="* " * 101),
        None,
        "producers.p.cron",
        "at most 200 characters",
    ),
    # --- run / registry
    (
        "unknown-run",
        with_producer(run="demo.nope", interval="5m"),
        KNOWN,
        "producers.p.run",
        "registered: demo.counter, demo.noop, prices.poll",
    ),
    (
        "unknown-run-message",
        with_producer(run="demo.nope"),
        KNOWN,
        "producers.p.run",
        "no producer named 'demo.nope' is registered",
    ),
    (
        "unknown-run-empty-registry",
        with_producer(run="demo.nope"),
        [],
        "producers.p.run",
        "(registered: none)",
    ),
    (
        "run-uppercase",
        with_producer(run="Demo.Noop"),
        None,
        "producers.p.run",
        "'Demo.Noop' is not valid",
    ),
    (
        "run-slash",
        with_producer(run="demo/noop"),
        None,
        "producers.p.run",
        "'demo/noop' is not valid",
    ),
    (
        "run-space",
        with_producer(run="demo noop"),
        None,
        "producers.p.run",
        "registered producer name",
    ),
    (
        "run-colon",
        with_producer(run="os:system"),
        None,
        "producers.p.run",
        "'os:system' is not valid",
    ),
    (
        "run-leading-dot",
        with_producer(run=".demo"),
        None,
        "producers.p.run",
        "'.demo' is not valid",
    ),
    (
        "run-leading-digit",
        with_producer(run="1demo"),
        None,
        "producers.p.run",
        "'1demo' is not valid",
    ),
    ("run-empty", with_producer(run=""), None, "producers.p.run", "'' is not valid"),
    (
        "run-trailing-newline",
        with_producer(run="demo.noop\n"),
        None,
        "producers.p.run",
        "is not valid",
    ),
    ("run-too-long", with_producer(run="a" * 201), None, "producers.p.run", "200 characters"),
    # --- workflow names
    ("name-uppercase", with_workflow(name="MyFlow"), None, "name", "'MyFlow' is not valid"),
    ("name-spaces", with_workflow(name="my flow"), None, "name", "'my flow' is not valid"),
    ("name-64", with_workflow(name="a" * 64), None, "name", "at most 63"),
    ("name-leading-dash", with_workflow(name="-flow"), None, "name", "'-flow' is not valid"),
    ("name-leading-underscore", with_workflow(name="_flow"), None, "name", "starting with"),
    ("name-empty", with_workflow(name=""), None, "name", "'' is not valid"),
    ("name-dot", with_workflow(name="a.b"), None, "name", "'a.b' is not valid"),
    ("name-trailing-newline", with_workflow(name="flow\n"), None, "name", "is not valid"),
    # --- producer names
    (
        "producer-uppercase",
        {"name": "wf", "producers": {"Poll": {"run": "demo.noop"}}},
        None,
        "producers.Poll",
        "producer names use lowercase letters",
    ),
    (
        "producer-space",
        {"name": "wf", "producers": {"my poll": {"run": "demo.noop"}}},
        None,
        "producers.my poll",
        "producer names use lowercase letters",
    ),
    (
        "producer-64",
        {"name": "wf", "producers": {"p" * 64: {"run": "demo.noop"}}},
        None,
        f"producers.{'p' * 64}",
        "at most 63",
    ),
    (
        "producer-leading-dash",
        {"name": "wf", "producers": {"-p": {"run": "demo.noop"}}},
        None,
        "producers.-p",
        "starting with a letter or digit",
    ),
    (
        "producer-empty",
        {"name": "wf", "producers": {"": {"run": "demo.noop"}}},
        None,
        "producers.",
        "producer names use lowercase letters",
    ),
    (
        "producer-number",
        {"name": "wf", "producers": {5: {"run": "demo.noop"}}},
        None,
        "producers.5",
        "producer names use lowercase letters",
    ),
    # --- wrong types
    (
        "interval-number",
        with_producer(run="demo.noop", interval=30),
        None,
        "producers.p.interval",
        "must be a string, not a number",
    ),
    (
        "interval-bool",
        with_producer(run="demo.noop", interval=True),
        None,
        "producers.p.interval",
        "must be a string, not a boolean",
    ),
    (
        "cron-number",
        with_producer(run="demo.noop", cron=5),
        None,
        "producers.p.cron",
        "must be a string, not a number",
    ),
    (
        "timezone-number",
        with_producer(run="demo.noop", cron="* * * * *", timezone=1),
        None,
        "producers.p.timezone",
        "must be a string, not a number",
    ),
    (
        "params-list",
        with_producer(run="demo.noop", params=[1, 2]),
        None,
        "producers.p.params",
        "must be a mapping, not a list",
    ),
    (
        "params-string",
        with_producer(run="demo.noop", params="x=1"),
        None,
        "producers.p.params",
        "must be a mapping, not a string",
    ),
    (
        "producers-list",
        {"name": "wf", "producers": [{"run": "demo.noop"}]},
        None,
        "producers",
        "must be a mapping, not a list",
    ),
    (
        "producers-null",
        {"name": "wf", "producers": None},
        None,
        "producers",
        "must be a mapping, not empty (null)",
    ),
    (
        "producer-null",
        {"name": "wf", "producers": {"p": None}},
        None,
        "producers.p",
        "must be a mapping, not empty (null)",
    ),
    (
        "producer-string",
        {"name": "wf", "producers": {"p": "demo.noop"}},
        None,
        "producers.p",
        "must be a mapping, not a string",
    ),
    ("name-number", with_workflow(name=5), None, "name", "must be a string, not a number"),
    ("name-null", with_workflow(name=None), None, "name", "must be a string, not empty (null)"),
    ("run-number", with_producer(run=5), None, "producers.p.run", "must be a string, not a number"),
    (
        "timeout-number",
        with_producer(run="demo.noop", timeout=10),
        None,
        "producers.p.timeout",
        "must be a string, not a number",
    ),
    (
        "description-number",
        with_workflow(description=5),
        None,
        "description",
        "must be a string, not a number",
    ),
    (
        "description-too-long",
        with_workflow(description="x" * 2001),
        None,
        "description",
        "at most 2000 characters",
    ),
    # --- missing fields
    ("missing-name", with_workflow(name=_DROP), None, "name", "is required"),
    ("missing-producers", with_workflow(producers=_DROP), None, "producers", "is required"),
    ("missing-run", with_producer(interval="5m"), None, "producers.p.run", "is required"),
    # --- unknown keys
    ("unknown-top-key", with_workflow(schedule="5m"), None, "schedule", "is not a known field"),
    ("unknown-top-key-typo", with_workflow(producer={}), None, "producer", "is not a known field"),
    (
        "unknown-producer-key",
        with_producer(run="demo.noop", retry=3),
        None,
        "producers.p.retry",
        "is not a known field",
    ),
    (
        "unknown-producer-key-tz",
        with_producer(run="demo.noop", cron="* * * * *", tz="UTC"),
        None,
        "producers.p.tz",
        "is not a known field",
    ),
    # --- empty producers
    (
        "empty-producers",
        with_workflow(producers={}),
        None,
        "producers",
        "must list at least one producer",
    ),
    # --- timeouts
    (
        "timeout-zero",
        with_producer(run="demo.noop", timeout="0s"),
        None,
        "producers.p.timeout",
        "duration '0s' is zero",
    ),
    (
        "timeout-two-days",
        with_producer(run="demo.noop", timeout="2d"),
        None,
        "producers.p.timeout",
        "timeout '2d' is longer than the maximum of 1d",
    ),
    (
        "timeout-just-over",
        with_producer(run="demo.noop", timeout="1d1s"),
        None,
        "producers.p.timeout",
        "longer than the maximum of 1d",
    ),
    (
        "timeout-garbage",
        with_producer(run="demo.noop", timeout="abc"),
        None,
        "producers.p.timeout",
        "duration 'abc' is not understood",
    ),
    (
        "timeout-no-unit",
        with_producer(run="demo.noop", timeout="10"),
        None,
        "producers.p.timeout",
        "duration '10' has no unit",
    ),
    (
        "timeout-negative",
        with_producer(run="demo.noop", timeout="-1m"),
        None,
        "producers.p.timeout",
        "duration '-1m' is negative",
    ),
]


@pytest.mark.parametrize(
    ("data", "known", "path", "fragment"),
    [
        pytest.param(data, known, path, fragment, id=case)
        for case, data, known, path, fragment in INVALID
    ],
)
def test_invalid_definition(
    data: object, known: list[str] | None, path: str, fragment: str
) -> None:
    problems = problems_of(copy.deepcopy(data), known_producers=known)
    matching = [p for p in problems if p.path == path]
    assert matching, f"no problem at {path!r}: {problems}"
    assert any(fragment in p.message for p in matching), (fragment, matching)


def test_invalid_case_count() -> None:
    assert len(INVALID) >= 45


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ([{"name": "wf"}], "a definition must be a mapping, not a list"),
        (None, "a definition must be a mapping, not empty (null)"),
        ("name: wf", "a definition must be a mapping, not a string"),
        (42, "a definition must be a mapping, not a number"),
    ],
)
def test_non_mapping_definition(data: object, fragment: str) -> None:
    problems = problems_of(data)
    assert [(p.path, p.message) for p in problems] == [("", fragment)]
    assert str(problems[0]) == f"wf.yaml: (top level): {fragment}"


def test_all_problems_are_reported_at_once() -> None:
    data = {
        "name": "Bad Name",
        "colour": "blue",
        "producers": {
            "a": {"run": "demo.nope", "cron": "61 * * * *"},
            "b": {"run": "demo.noop", "interval": "5x", "timeout": "2d"},
            "c": {"run": "demo.noop", "interval": "5m", "cron": "* * * * *"},
            "D": {"run": "demo.noop"},
        },
    }
    problems = problems_of(data, known_producers=KNOWN)
    paths = {p.path for p in problems}
    assert {
        "name",
        "colour",
        "producers.a.cron",
        "producers.a.run",
        "producers.b.timeout",
        "producers.c",
        "producers.D",
    } <= paths
    assert all(p.message for p in problems)


def test_definition_error_text_and_json() -> None:
    with pytest.raises(DefinitionError) as caught:
        parse_definition(with_producer(run="demo.noop", cron="61 * * * *"), source="flows/a.yaml")
    error = caught.value
    assert isinstance(error, ValueError)
    assert str(error) == (
        "flows/a.yaml: producers.p.cron: invalid cron '61 * * * *': minute field '61' is not "
        "valid ([61 * * * *] is not acceptable, out of range)"
    )
    assert error.to_json() == {
        "errors": [
            {"file": "flows/a.yaml", "path": p.path, "message": p.message} for p in error.problems
        ]
    }
    assert json.loads(json.dumps(error.to_json()))["errors"][0]["path"] == "producers.p.cron"


def test_bad_producer_does_not_hide_other_producers_problems() -> None:
    data = {
        "name": "wf",
        "producers": {
            "broken": {"run": 5},
            "bad-cron": {"run": "demo.noop", "cron": "* * * * 9"},
        },
    }
    paths = {p.path for p in problems_of(data)}
    assert {"producers.broken.run", "producers.bad-cron.cron"} <= paths


def test_producer_name_with_trailing_newline_is_rejected() -> None:
    problems = problems_of({"name": "wf", "producers": {"p\n": {"run": "demo.noop"}}})
    assert any(p.path == "producers.p\n" for p in problems)


def test_bad_cron_and_bad_timezone_are_both_reported_at_their_paths() -> None:
    problems = problems_of(with_producer(run="demo.noop", cron="61 * * * *", timezone="Mars/Base"))
    by_path = {p.path: p.message for p in problems}
    assert "Mars/Base" in by_path.get("producers.p.timezone", "")
    assert "61" in by_path.get("producers.p.cron", "")


def test_schedule_problem_is_reported_next_to_another_field_problem() -> None:
    problems = problems_of(with_producer(run="demo.noop", interval="5x", timeout="2d"))
    paths = {p.path for p in problems}
    assert {"producers.p.timeout", "producers.p.interval"} <= paths


# --------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("suffix", [".yaml", ".yml", ".YAML"])
def test_yaml_file_loads(tmp_path: Path, suffix: str) -> None:
    path = write(tmp_path / f"flow{suffix}", VALID_YAML)
    definition = load_definition_file(path, known_producers=KNOWN)
    assert definition == parse_definition(copy.deepcopy(VALID))
    assert definition.producers["nightly_report"].schedule == CronSchedule(
        "30 2 * * *", "Europe/Berlin"
    )


def test_json_file_loads(tmp_path: Path) -> None:
    path = write(tmp_path / "flow.json", json.dumps(VALID))
    definition = load_definition_file(str(path), known_producers=KNOWN)
    assert definition == parse_definition(copy.deepcopy(VALID))


def test_load_definition_files_returns_all_in_order(tmp_path: Path) -> None:
    first = write(tmp_path / "a.yaml", VALID_YAML)
    other = copy.deepcopy(VALID)
    other["name"] = "other"
    second = write(tmp_path / "b.json", json.dumps(other))
    definitions = load_definition_files([first, second], known_producers=KNOWN)
    assert [d.name for d in definitions] == ["market-data", "other"]
    assert load_definition_files([]) == []


@pytest.mark.parametrize(
    ("name", "content", "fragment"),
    [
        ("list.yaml", "- a\n- b\n", "a definition must be a mapping, not a list"),
        ("scalar.yaml", "just text\n", "a definition must be a mapping, not a string"),
        ("empty.yaml", "", "a definition must be a mapping, not empty (null)"),
        ("list.json", "[1, 2]", "a definition must be a mapping, not a list"),
        ("syntax.yaml", "name: wf\nproducers: [unclosed\n", "YAML syntax error"),
        ("tabs.yaml", "name: wf\n\tproducers: {}\n", "YAML syntax error"),
        ("syntax.json", '{"name": "wf",}', "JSON syntax error"),
        ("empty.json", "", "JSON syntax error"),
        ("flow.txt", "name: wf\n", "use a .yaml, .yml or .json file"),
        ("flow.toml", 'name = "wf"\n', "use a .yaml, .yml or .json file"),
        ("noext", "name: wf\n", "use a .yaml, .yml or .json file"),
        ("latin1.yaml", "name: caf\xe9\n".encode("latin-1"), "file is not UTF-8 text"),
    ],
)
def test_bad_files(tmp_path: Path, name: str, content: str | bytes, fragment: str) -> None:
    path = write(tmp_path / name, content)
    with pytest.raises(DefinitionError) as caught:
        load_definition_file(path)
    problems = caught.value.problems
    assert len(problems) == 1
    assert problems[0].file == str(path)
    assert problems[0].path == ""
    assert fragment in problems[0].message
    assert str(path) in str(caught.value)


def test_yaml_syntax_error_message_is_one_line(tmp_path: Path) -> None:
    path = write(tmp_path / "bad.yaml", "name: wf\nproducers:\n  p: {run: [\n")
    with pytest.raises(DefinitionError) as caught:
        load_definition_file(path)
    message = caught.value.problems[0].message
    assert message.startswith("YAML syntax error: ")
    assert "\n" not in message


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "missing.yaml"
    with pytest.raises(DefinitionError) as caught:
        load_definition_file(path)
    (problem,) = caught.value.problems
    assert problem.file == str(path)
    assert "cannot read" in problem.message
    assert "No such file" in problem.message


def test_directory_is_not_a_definition(tmp_path: Path) -> None:
    path = tmp_path / "dir.yaml"
    path.mkdir()
    with pytest.raises(DefinitionError) as caught:
        load_definition_file(path)
    (problem,) = caught.value.problems
    assert problem.file == str(path)
    assert "cannot read" in problem.message


def test_oversized_file(tmp_path: Path) -> None:
    path = write(
        tmp_path / "big.yaml",
        VALID_YAML + "# " + "x" * (MAX_DEFINITION_BYTES - len(VALID_YAML)) + "\n",
    )
    size = path.stat().st_size
    assert size > MAX_DEFINITION_BYTES
    with pytest.raises(DefinitionError) as caught:
        load_definition_file(path)
    (problem,) = caught.value.problems
    assert problem.file == str(path)
    assert problem.message == f"file is {size} bytes; the limit is {MAX_DEFINITION_BYTES}"


def test_file_of_exactly_the_limit_loads(tmp_path: Path) -> None:
    text = json.dumps(VALID)
    path = write(tmp_path / "limit.json", text + " " * (MAX_DEFINITION_BYTES - len(text)))
    assert path.stat().st_size == MAX_DEFINITION_BYTES
    assert load_definition_file(path).name == "market-data"


def test_yaml_is_loaded_safely(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = write(
        tmp_path / "evil.yaml",
        "name: wf\n"
        "producers:\n"
        "  p:\n"
        "    run: demo.noop\n"
        "    params:\n"
        f"      x: !!python/object/apply:os.system ['touch {marker}']\n",
    )
    with pytest.raises(DefinitionError) as caught:
        load_definition_file(path)
    assert not marker.exists()
    (problem,) = caught.value.problems
    assert problem.file == str(path)
    assert "YAML syntax error" in problem.message
    assert "python/object" in problem.message


def test_python_object_tag_is_rejected(tmp_path: Path) -> None:
    path = write(
        tmp_path / "obj.yaml",
        "!!python/object:collections.OrderedDict\nname: wf\nproducers: {p: {run: demo.noop}}\n",
    )
    with pytest.raises(DefinitionError, match="python/object"):
        load_definition_file(path)


def test_problems_inside_a_file_carry_its_name(tmp_path: Path) -> None:
    path = write(tmp_path / "flows" / "x.yaml", "name: wf\nproducers:\n  p: {run: demo.nope}\n")
    with pytest.raises(DefinitionError) as caught:
        load_definition_file(path, known_producers=KNOWN)
    (problem,) = caught.value.problems
    assert (problem.file, problem.path) == (str(path), "producers.p.run")
    assert str(problem).startswith(f"{path}: producers.p.run: no producer named 'demo.nope'")


def test_duplicate_workflow_names_across_files(tmp_path: Path) -> None:
    first = write(tmp_path / "a.yaml", "name: same\nproducers: {p: {run: demo.noop}}\n")
    second = write(
        tmp_path / "b.json", '{"name": "same", "producers": {"q": {"run": "demo.noop"}}}'
    )
    with pytest.raises(DefinitionError) as caught:
        load_definition_files([first, second])
    (problem,) = caught.value.problems
    assert problem.file == str(second)
    assert problem.path == "name"
    assert problem.message == f"workflow 'same' is also defined in {first}"


def test_problems_of_several_files_are_reported_together(tmp_path: Path) -> None:
    good = write(tmp_path / "good.yaml", "name: good\nproducers: {p: {run: demo.noop}}\n")
    bad_cron = write(
        tmp_path / "cron.yaml", "name: c\nproducers: {p: {run: demo.noop, cron: '* * * * 9'}}\n"
    )
    bad_json = write(tmp_path / "broken.json", "{")
    missing = tmp_path / "missing.yml"
    wrong_ext = write(tmp_path / "flow.ini", "x")
    dup = write(tmp_path / "dup.yaml", "name: good\nproducers: {q: {run: demo.noop}}\n")
    with pytest.raises(DefinitionError) as caught:
        load_definition_files([good, bad_cron, bad_json, missing, wrong_ext, dup])
    located = [(p.file, p.path) for p in caught.value.problems]
    assert located == [
        (str(bad_cron), "producers.p.cron"),
        (str(bad_json), ""),
        (str(missing), ""),
        (str(wrong_ext), ""),
        (str(dup), "name"),
    ]
    text = str(caught.value)
    for path in (bad_cron, bad_json, missing, wrong_ext, dup):
        assert str(path) in text
    assert str(good) + ":" not in text


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        (
            "dup.yaml",
            "name: wf\nproducers:\n  p: {run: demo.noop, interval: 5m}\n"
            "  p: {run: demo.counter, interval: 1h}\n",
            "YAML syntax error: key 'p' appears twice (line 3)",
        ),
        (
            "dup.json",
            '{"name": "wf", "producers": {"p": {"run": "demo.noop"}, '
            '"p": {"run": "demo.counter"}}}',
            "JSON syntax error: key 'p' appears twice",
        ),
    ],
)
def test_duplicate_producer_keys_in_one_file_are_reported(
    tmp_path: Path, name: str, content: str, message: str
) -> None:
    path = write(tmp_path / name, content)
    with pytest.raises(DefinitionError, match=re.escape(f"{path}: (top level): {message}")):
        load_definition_file(path)

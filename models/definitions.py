"""Workflow definitions: YAML or JSON files, validated with pydantic.

Every problem is reported with the file, the dotted path of the field (for example
`producers.poll-exchange.cron`) and what is wrong, all at once, so a user fixes a file in one go.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from beat.schedules import (
    Schedule,
    ScheduleError,
    check_timezone,
    compile_schedule,
    parse_cron,
    parse_interval,
)

MAX_DEFINITION_BYTES = 1024 * 1024
MAX_TIMEOUT_SECONDS = 24 * 3600
SLUG_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
RUN_PATTERN = r"^[a-z][a-z0-9_]*(\.[a-z0-9_-]+)*$"


@dataclass(frozen=True)
class DefinitionProblem:
    file: str
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.path or '(top level)'}: {self.message}"


class DefinitionError(ValueError):
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


class ProducerDefinition(BaseModel):
    """One producer: what it runs, with which params, on which schedule."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    run: str = Field(pattern=RUN_PATTERN, max_length=200)
    interval: str | None = None
    cron: str | None = Field(default=None, max_length=200)
    timezone: str | None = Field(default=None, max_length=64)
    params: dict[str, Any] = Field(default_factory=dict)
    timeout: str | None = None

    @field_validator("timeout")
    @classmethod
    def _timeout_is_a_duration(cls, value: str | None) -> str | None:
        if value is not None:
            seconds = _duration_seconds(value)
            if seconds > MAX_TIMEOUT_SECONDS:
                raise ValueError(f"timeout {value!r} is longer than the maximum of 1d")
        return value

    @property
    def schedule(self) -> Schedule | None:
        """The compiled schedule; None for a manual-only producer."""
        return compile_schedule(interval=self.interval, cron=self.cron, timezone=self.timezone)

    @property
    def timeout_seconds(self) -> float | None:
        return None if self.timeout is None else _duration_seconds(self.timeout)


class WorkflowDefinition(BaseModel):
    """A named set of producers, each with its own schedule."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    name: str = Field(pattern=SLUG_PATTERN)
    description: str = Field(default="", max_length=2000)
    producers: dict[str, ProducerDefinition] = Field(min_length=1)


def _duration_seconds(text: str) -> float:
    try:
        return parse_interval(text).total_seconds()
    except ScheduleError as exc:
        raise ValueError(str(exc).replace("interval", "duration", 1)) from None


def parse_definition(
    data: object,
    *,
    source: str = "<definition>",
    known_producers: Collection[str] | None = None,
) -> WorkflowDefinition:
    """Validate a definition (already parsed from YAML/JSON); raise DefinitionError listing all
    problems. With `known_producers`, a `run` naming no registered producer is a problem."""
    if not isinstance(data, dict):
        raise DefinitionError(
            [DefinitionProblem(source, "", f"a definition must be a mapping, not {_kind(data)}")]
        )
    definition, problems = _structure_problems(data, source)
    producers = data.get("producers")
    for name, fields in producers.items() if isinstance(producers, dict) else ():
        if isinstance(fields, dict):
            problems.extend(_producer_problems(str(name), fields, source, known_producers))
    if problems or definition is None:
        raise DefinitionError(problems)
    return definition


def _structure_problems(
    data: dict[str, Any], source: str
) -> tuple[WorkflowDefinition | None, list[DefinitionProblem]]:
    """The model pydantic builds (None if it cannot), and the structural problems found."""
    problems: list[DefinitionProblem] = []
    producers = data.get("producers")
    if isinstance(producers, dict):
        for name in producers:
            if not isinstance(name, str) or not _is_slug(name):
                problems.append(
                    DefinitionProblem(
                        source,
                        f"producers.{name}",
                        "producer names use lowercase letters, digits, '-' and '_' "
                        "(at most 63, starting with a letter or digit)",
                    )
                )
    try:
        return WorkflowDefinition.model_validate(data), problems
    except ValidationError as exc:
        return None, [*problems, *_from_pydantic(exc, source)]


def _producer_problems(
    name: str,
    fields: dict[str, Any],
    source: str,
    known_producers: Collection[str] | None,
) -> list[DefinitionProblem]:
    """What pydantic cannot see: the schedule's meaning and whether `run` is registered.

    Read from the raw fields, so these problems are reported even when others are too.
    """
    base = f"producers.{name}"
    problems = [
        DefinitionProblem(source, f"{base}{suffix}", message)
        for suffix, message in _schedule_problems(fields)
    ]
    run = fields.get("run")
    if known_producers is not None and isinstance(run, str) and run not in known_producers:
        registered = ", ".join(sorted(known_producers)) or "none"
        problems.append(
            DefinitionProblem(
                source,
                f"{base}.run",
                f"no producer named {run!r} is registered here, where only the built-ins and the "
                f"modules in DRUMLINE_PRODUCER_MODULES are (registered: {registered}); set it to "
                "the modules your workers load",
            )
        )
    return problems


def _schedule_problems(fields: dict[str, Any]) -> list[tuple[str, str]]:
    """(path suffix, message) for each schedule field at fault; wrong types are pydantic's."""
    interval, cron, timezone = (fields.get(key) for key in ("interval", "cron", "timezone"))
    if not all(value is None or isinstance(value, str) for value in (interval, cron, timezone)):
        return []
    if interval is not None and cron is not None:
        return [("", "set either interval or cron, not both")]
    found: list[tuple[str, str]] = []
    checks: list[tuple[str, Any]] = []
    if interval is not None:
        checks.append((".interval", lambda: parse_interval(interval)))
        if timezone is not None:
            found.append(
                (".timezone", "timezone applies to cron schedules only, not to an interval")
            )
    elif cron is not None:
        checks.append((".cron", lambda: parse_cron(cron)))
        if timezone is not None:
            checks.append((".timezone", lambda: check_timezone(timezone)))
    elif timezone is not None:
        found.append((".timezone", "timezone is set but there is no cron schedule to apply it to"))
    for suffix, check in checks:
        try:
            check()
        except ScheduleError as exc:
            found.append((suffix, str(exc)))
    return found


def _from_pydantic(error: ValidationError, source: str) -> list[DefinitionProblem]:
    problems = []
    for item in error.errors():
        path = ".".join(str(part) for part in item["loc"])
        problems.append(DefinitionProblem(source, path, _message(item)))
    return problems


def _message(item: Any) -> str:
    kind = item["type"]
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        return "is not a known field"
    if kind == "too_short" and item["loc"] == ("producers",):
        return "must list at least one producer"
    if kind == "string_pattern_mismatch":
        return f"{item['input']!r} is not valid: {_pattern_hint(item['loc'])}"
    if kind.endswith("_type"):
        return f"must be {_expected(kind)}, not {_kind(item['input'])}"
    return str(item["msg"]).removeprefix("Value error, ")


def _pattern_hint(loc: tuple[Any, ...]) -> str:
    if loc and loc[-1] == "run":
        return "use a registered producer name like 'demo.counter'"
    return "use lowercase letters, digits, '-' and '_', at most 63, starting with a letter or digit"


def _expected(kind: str) -> str:
    return {
        "string_type": "a string",
        "dict_type": "a mapping",
        "int_type": "an integer",
        "model_type": "a mapping",
    }.get(kind, kind.removesuffix("_type"))


def _kind(value: object) -> str:
    return {
        dict: "a mapping",
        list: "a list",
        str: "a string",
        int: "a number",
        float: "a number",
        bool: "a boolean",
        type(None): "empty (null)",
    }.get(type(value), type(value).__name__)


def _is_slug(text: str) -> bool:
    return re.fullmatch(SLUG_PATTERN, text, re.ASCII) is not None


def load_definition_file(
    path: str | Path, *, known_producers: Collection[str] | None = None
) -> WorkflowDefinition:
    """Read and validate one YAML (.yaml/.yml) or JSON (.json) file."""
    source = str(path)
    return parse_definition(_read(Path(path)), source=source, known_producers=known_producers)


def load_definition_files(
    paths: Iterable[str | Path], *, known_producers: Collection[str] | None = None
) -> list[WorkflowDefinition]:
    """Validate several files, reporting the problems of all of them at once."""
    definitions: list[WorkflowDefinition] = []
    problems: list[DefinitionProblem] = []
    seen: dict[str, str] = {}
    for path in paths:
        try:
            definition = load_definition_file(path, known_producers=known_producers)
        except DefinitionError as exc:
            problems.extend(exc.problems)
            continue
        if definition.name in seen:
            problems.append(
                DefinitionProblem(
                    str(path),
                    "name",
                    f"workflow {definition.name!r} is also defined in {seen[definition.name]}",
                )
            )
            continue
        seen[definition.name] = str(path)
        definitions.append(definition)
    if problems:
        raise DefinitionError(problems)
    return definitions


def _read(path: Path) -> object:
    source = str(path)
    suffix = path.suffix.lower()
    if suffix not in (".yaml", ".yml", ".json"):
        raise DefinitionError([DefinitionProblem(source, "", "use a .yaml, .yml or .json file")])
    try:
        size = path.stat().st_size
        if size > MAX_DEFINITION_BYTES:
            raise DefinitionError(
                [
                    DefinitionProblem(
                        source, "", f"file is {size} bytes; the limit is {MAX_DEFINITION_BYTES}"
                    )
                ]
            )
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DefinitionError(
            [DefinitionProblem(source, "", f"cannot read: {exc.strerror}")]
        ) from None
    except UnicodeDecodeError:
        raise DefinitionError([DefinitionProblem(source, "", "file is not UTF-8 text")]) from None
    try:
        if suffix == ".json":
            return json.loads(text, object_pairs_hook=_unique_keys)
        return yaml.load(text, Loader=_UniqueKeySafeLoader)  # a SafeLoader subclass
    except (json.JSONDecodeError, yaml.YAMLError, DuplicateKeyError) as exc:
        kind = "JSON" if suffix == ".json" else "YAML"
        detail = " ".join(str(exc).split())
        raise DefinitionError(
            [DefinitionProblem(source, "", f"{kind} syntax error: {detail}")]
        ) from None


class DuplicateKeyError(ValueError):
    """A mapping names the same key twice; YAML and JSON would silently keep the last."""


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    mapping: dict[str, Any] = {}
    for key, value in pairs:
        if key in mapping:
            raise DuplicateKeyError(f"key {key!r} appears twice")
        mapping[key] = value
    return mapping


class _UniqueKeySafeLoader(yaml.SafeLoader):
    """yaml.SafeLoader (no arbitrary objects) that also refuses duplicate keys."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
            except TypeError:  # unhashable: SafeLoader's own construct_mapping refuses it
                continue
            if duplicate:
                raise DuplicateKeyError(
                    f"key {key!r} appears twice (line {node.start_mark.line + 1})"
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)

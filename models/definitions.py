"""Workflow definitions: YAML or JSON files, validated with pydantic.

Every problem is reported with the file, the dotted path of the field (for example
`producers.poll-exchange.cron`) and what is wrong, all at once, so a user fixes a file in one go.
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Collection, Iterable
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator

from models.errors import DefinitionError, DefinitionProblem, ScheduleError, ScheduleFieldError
from models.plain_json import JsonBounds, PlainJsonError, check_plain_json
from models.schedule_rules import MAX_CALENDARS, RULE_FIELDS, calendar_exclusions, compile_rules
from models.schedules import (
    Schedule,
    check_timezone,
    compile_schedule,
    format_interval,
    parse_cron,
    parse_interval,
)
from models.slot_policy import RetryPolicy, SlotPolicy
from models.vocabulary import CatchupPolicy, OverlapPolicy

MAX_DEFINITION_BYTES = 1024 * 1024
MAX_TIMEOUT_SECONDS = 24 * 3600
MAX_PRODUCERS = 1000
# Each producer's `params`; the whole definition is bounded more loosely, so that a params
# problem is reported with the params' own limits.
PARAMS_BOUNDS = JsonBounds(max_depth=32, max_bytes=64 * 1024, max_int_digits=30)
DEFINITION_BOUNDS = JsonBounds(max_depth=64, max_bytes=MAX_DEFINITION_BYTES, max_int_digits=30)
# YAML, counted before composing: aliases (each may stand for a whole subtree), nesting and
# values (a 1 MiB flow list of 400,000 one-letter strings would take seconds to build).
MAX_YAML_ALIASES = 100
MAX_YAML_DEPTH = 100
MAX_YAML_VALUES = 100_000
# Fields that may be left out but not written empty: `interval:` with no value would
# otherwise make a silently manual-only producer.
_NOT_NULL = (
    "run",
    "interval",
    "cron",
    "timezone",
    "params",
    "timeout",
    "overlap",
    "max_concurrent",
    "catchup",
    "catchup_window",
    "start_deadline",
    "retries",
    "pause_after_failures",
    *RULE_FIELDS,
)
MAX_CONCURRENT = 100
MAX_RETRIES = 100
MAX_PAUSE_AFTER_FAILURES = 10_000
SLUG_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
RUN_PATTERN = r"^[a-z][a-z0-9_]*(\.[a-z0-9_-]+)*$"


class RetriesDefinition(BaseModel):
    """`retries: {max: N, backoff: 10s, max_backoff: 5m}`: attempts within one slot."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    max: int = Field(ge=0, le=MAX_RETRIES)
    backoff: str = "10s"
    max_backoff: str = "5m"

    @field_validator("backoff", "max_backoff")
    @classmethod
    def _is_a_duration(cls, value: str) -> str:
        _duration_seconds(value)
        return value


class ProducerDefinition(BaseModel):
    """One producer: what it runs, with which params, on which schedule."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    run: str = Field(pattern=RUN_PATTERN, max_length=200)
    interval: str | None = None
    cron: str | None = Field(default=None, max_length=200)
    timezone: str | None = Field(default=None, max_length=64)
    params: dict[str, Any] = Field(default_factory=dict)
    timeout: str | None = None
    # The richer forms (models/schedule_rules.py); their meaning is checked there.
    schedules: list[Any] | None = None
    rrule: str | None = Field(default=None, max_length=500)
    dtstart: str | None = Field(default=None, max_length=64)
    at: str | None = Field(default=None, max_length=64)
    dst: dict[str, Any] | None = None
    exclude: list[Any] | None = None
    calendars: list[str] | None = None
    jitter: str | None = Field(default=None, max_length=64)
    # Set by the workflow: its calendars, and the seed of this producer's jitter.
    _calendars: dict[str, Any] = PrivateAttr(default_factory=dict)
    _seed: str = PrivateAttr(default="")

    @field_validator("timeout")
    @classmethod
    def _timeout_is_a_duration(cls, value: str | None) -> str | None:
        if value is not None:
            seconds = _duration_seconds(value)
            if seconds > MAX_TIMEOUT_SECONDS:
                raise ValueError(f"timeout {value!r} is longer than the maximum of 1d")
        return value

    # Slot policies (see `models.slot_policy`); left out, each keeps today's behaviour.
    overlap: Literal["skip", "buffer_one", "allow"] = "skip"
    max_concurrent: int | None = Field(default=None, ge=1, le=MAX_CONCURRENT)
    catchup: Literal["latest", "all", "none"] = "latest"
    catchup_window: str | None = None
    start_deadline: str | None = None
    retries: RetriesDefinition | None = None
    pause_after_failures: int | None = Field(default=None, ge=1, le=MAX_PAUSE_AFTER_FAILURES)

    @field_validator("catchup_window", "start_deadline")
    @classmethod
    def _policy_duration(cls, value: str | None) -> str | None:
        if value is not None:
            _duration_seconds(value)
        return value

    @property
    def slot_policy(self) -> SlotPolicy:
        retries = self.retries
        return SlotPolicy(
            overlap=OverlapPolicy(self.overlap),
            max_concurrent=self.max_concurrent or 1,
            catchup=CatchupPolicy(self.catchup),
            catchup_window=_duration(self.catchup_window),
            start_deadline=_duration(self.start_deadline),
            retries=RetryPolicy()
            if retries is None
            else RetryPolicy(
                max=retries.max,
                backoff=parse_interval(retries.backoff),
                max_backoff=parse_interval(retries.max_backoff),
            ),
            pause_after_failures=self.pause_after_failures,
        )

    @property
    def schedule(self) -> Schedule | None:
        """The compiled schedule; None for a manual-only producer."""
        fields = self.model_dump(exclude_none=True, exclude={"run", "params", "timeout"})
        if uses_rules(fields):
            return compile_rules(fields, self._calendars, self._seed)
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
    # Exclusions several producers share: `{name: {timezone: ..., exclude: [...]}}`.
    calendars: dict[str, dict[str, Any]] = Field(default_factory=dict)

    def model_post_init(self, context: Any, /) -> None:
        for name, producer in self.producers.items():
            producer._calendars = self.calendars
            producer._seed = f"{self.name}/{name}"


def uses_rules(fields: dict[str, Any]) -> bool:
    """Whether a producer uses any form beyond a single `interval:` or `cron:`."""
    return any(fields.get(key) is not None for key in RULE_FIELDS)


def _duration(text: str | None) -> timedelta | None:
    return None if text is None else parse_interval(text)


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
    max_timeout: timedelta | None = None,
) -> WorkflowDefinition:
    """Validate a definition (already parsed from YAML/JSON); raise DefinitionError listing all
    problems. With `known_producers`, a `run` naming no registered producer is a problem;
    with `max_timeout` (the workers' limit, from their lease), a longer `timeout` is one.

    `drumline validate`, `drumline deploy` and the deploy task all call this, so they accept
    and refuse the same definitions.
    """
    names = _producer_name_problems(data, source)
    try:
        _check_plain(data, source)
    except DefinitionError as error:  # a non-string producer name is one of `names` already
        plain = [p for p in error.problems if not (names and p.path == "producers")]
        raise DefinitionError([*names, *plain]) from None
    if not isinstance(data, dict):
        raise DefinitionError(
            [DefinitionProblem(source, "", f"a definition must be a mapping, not {_kind(data)}")]
        )
    producers = data.get("producers")
    if isinstance(producers, dict) and len(producers) > MAX_PRODUCERS:
        message = f"has {len(producers)} producers; the limit is {MAX_PRODUCERS} per workflow"
        raise DefinitionError([DefinitionProblem(source, "producers", message)])
    definition, problems = _structure_problems(data, source, names)
    calendars, calendar_problems = _calendars(data.get("calendars"), source)
    problems.extend(calendar_problems)
    for name, fields in producers.items() if isinstance(producers, dict) else ():
        if isinstance(fields, dict):
            problems.extend(
                _producer_problems(
                    str(name), fields, source, known_producers, max_timeout, calendars
                )
            )
    if problems or definition is None:
        raise DefinitionError(problems)
    return definition


def _check_plain(data: object, source: str) -> None:
    """Plain JSON within bounds, before anything else looks at it: what YAML adds (dates,
    sets, bytes, pairs), NaN, non-string keys, NUL and lone surrogates are refused, and the
    walk stops at the size limit, so aliases expanding to gigabytes cost nothing."""
    try:
        check_plain_json(data, DEFINITION_BOUNDS)
    except PlainJsonError as exc:
        if exc.problem == f"larger than {DEFINITION_BOUNDS.max_bytes} bytes as JSON":
            problem = f"definition is larger than {MAX_DEFINITION_BYTES} bytes as JSON"
            raise DefinitionError([DefinitionProblem(source, "", problem)]) from None
        raise DefinitionError([_plain_problem(exc, source)]) from None


def _plain_problem(error: PlainJsonError, source: str) -> DefinitionProblem:
    """`$.producers.p.params.x` becomes the path `producers.p.params.x`; a problem with a
    key (`... key 'k'`) is reported at its mapping, naming the key."""
    where, _, key = error.path.partition(" key ")
    message = f"key {key}: {error.problem}" if key else error.problem
    if message.endswith("is not plain JSON"):
        message += " (in YAML, quote it to keep it as text)"
    return DefinitionProblem(source, where.removeprefix("$").removeprefix("."), message)


def _producer_name_problems(data: object, source: str) -> list[DefinitionProblem]:
    producers = data.get("producers") if isinstance(data, dict) else None
    return [
        DefinitionProblem(
            source,
            f"producers.{str(name)[:80]}",
            "producer names use lowercase letters, digits, '-' and '_' "
            "(at most 63, starting with a letter or digit)",
        )
        for name in (producers if isinstance(producers, dict) else ())
        if not isinstance(name, str) or not _is_slug(name)
    ]


def _structure_problems(
    data: dict[str, Any], source: str, name_problems: list[DefinitionProblem]
) -> tuple[WorkflowDefinition | None, list[DefinitionProblem]]:
    """The model pydantic builds (None if it cannot), and the structural problems found."""
    try:
        return WorkflowDefinition.model_validate(data), list(name_problems)
    except ValidationError as exc:
        return None, [*name_problems, *_from_pydantic(exc, source)]


def _producer_problems(
    name: str,
    fields: dict[str, Any],
    source: str,
    known_producers: Collection[str] | None,
    max_timeout: timedelta | None,
    calendars: dict[str, Any],
) -> list[DefinitionProblem]:
    """What pydantic cannot see: the schedule's meaning, the bounds of `params`, a timeout
    the workers would refuse, and whether `run` is registered.

    Read from the raw fields, so these problems are reported even when others are too.
    """
    base = f"producers.{name}"
    problems = [
        DefinitionProblem(source, f"{base}{suffix}", message)
        for suffix, message in (
            _rules_problems(fields, calendars) if uses_rules(fields) else _schedule_problems(fields)
        )
    ]
    params = fields.get("params")
    if isinstance(params, dict):
        try:
            check_plain_json(params, PARAMS_BOUNDS, path=f"{base}.params")
        except PlainJsonError as exc:
            problems.append(_plain_problem(exc, source))
    problems.extend(
        DefinitionProblem(source, f"{base}.{suffix}", message)
        for suffix, message in _policy_problems(fields)
    )
    timeout = fields.get("timeout")
    if max_timeout is not None and isinstance(timeout, str):
        problems.extend(_timeout_problems(f"{base}.timeout", timeout, max_timeout, source))
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


def _policy_problems(fields: dict[str, Any]) -> list[tuple[str, str]]:
    """(field path, message) for policies that do not fit together; wrong types and values
    are pydantic's."""
    found = []
    if fields.get("max_concurrent") is not None and fields.get("overlap") != "allow":
        found.append(("max_concurrent", "max_concurrent applies only with overlap: allow"))
    retries = fields.get("retries")
    if retries is not None and fields.get("overlap") == "allow":
        found.append(
            (
                "retries",
                "retries need overlap skip or buffer_one: under allow the next slot"
                " may already run",
            )
        )
    if isinstance(retries, dict):
        try:
            backoff = parse_interval(str(retries.get("backoff", "10s")))
            cap = parse_interval(str(retries.get("max_backoff", "5m")))
        except ScheduleError:
            return found  # pydantic reports it
        if backoff > cap:
            found.append(
                (
                    "retries.backoff",
                    f"backoff {format_interval(backoff)} is longer than"
                    f" max_backoff {format_interval(cap)}",
                )
            )
    return found


def _timeout_problems(
    path: str, timeout: str, max_timeout: timedelta, source: str
) -> list[DefinitionProblem]:
    """A run must end before its claim's lease does, or its slot could be sent again."""
    try:
        seconds = _duration_seconds(timeout)
    except ValueError:
        return []  # pydantic reports it
    limit = max_timeout.total_seconds()
    if seconds <= limit:
        return []
    message = (
        f"timeout {timeout!r} is longer than {limit:g}s, the most these workers allow "
        "(80% of DRUMLINE_LEASE_SECONDS)"
    )
    return [DefinitionProblem(source, path, message)]


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


def _rules_problems(fields: dict[str, Any], calendars: dict[str, Any]) -> list[tuple[str, str]]:
    """The first problem of a producer's rules (schedules, RRULE, exclusions, jitter)."""
    try:
        compile_rules(fields, calendars, "")
    except ScheduleFieldError as exc:
        return [(f".{exc.path}" if exc.path else "", str(exc))]
    except ScheduleError as exc:
        return [("", str(exc))]
    return []


def _calendars(raw: object, source: str) -> tuple[dict[str, Any], list[DefinitionProblem]]:
    """The workflow's calendars, each checked once; one with a problem stands in as empty, so
    the producers naming it are not reported again for it."""
    if not isinstance(raw, dict):
        return {}, []  # absent, or a type pydantic reports
    if len(raw) > MAX_CALENDARS:
        message = f"has {len(raw)} calendars; the limit is {MAX_CALENDARS}"
        return {}, [DefinitionProblem(source, "calendars", message)]
    calendars: dict[str, Any] = {}
    problems: list[DefinitionProblem] = []
    for name, calendar in raw.items():
        path = f"calendars.{str(name)[:63]}"
        if not _is_slug(str(name)):
            message = "calendar names follow the producer name rule"
            problems.append(DefinitionProblem(source, path, message))
            continue
        try:
            calendar_exclusions(calendar, path)
        except ScheduleFieldError as exc:
            problems.append(DefinitionProblem(source, exc.path, str(exc)))
            calendar = {"exclude": []}
        calendars[name] = calendar
    return calendars, problems


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
    path: str | Path,
    *,
    known_producers: Collection[str] | None = None,
    max_timeout: timedelta | None = None,
) -> WorkflowDefinition:
    """Read and validate one YAML (.yaml/.yml) or JSON (.json) file."""
    source = str(path)
    data = _read(Path(path))
    _check_plain(data, source)
    if null_problems := _null_fields(data, source):
        raise DefinitionError(null_problems)
    return parse_definition(
        data, source=source, known_producers=known_producers, max_timeout=max_timeout
    )


def load_definition_text(
    text: str,
    *,
    source: str,
    known_producers: Collection[str] | None = None,
    max_timeout: timedelta | None = None,
) -> WorkflowDefinition:
    """Validate a definition given as text (pasted in the web view), YAML or JSON (JSON is
    read as the YAML it also is), with the same limits as a file."""
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_DEFINITION_BYTES:
        problem = f"text is {size} bytes; the limit is {MAX_DEFINITION_BYTES}"
        raise DefinitionError([DefinitionProblem(source, "", problem)])
    data = _parse_text(text, source, as_json=False)
    _check_plain(data, source)
    if null_problems := _null_fields(data, source):
        raise DefinitionError(null_problems)
    return parse_definition(
        data, source=source, known_producers=known_producers, max_timeout=max_timeout
    )


def load_definition_files(
    paths: Iterable[str | Path],
    *,
    known_producers: Collection[str] | None = None,
    max_timeout: timedelta | None = None,
) -> list[WorkflowDefinition]:
    """Validate several files, reporting the problems of all of them at once."""
    definitions: list[WorkflowDefinition] = []
    problems: list[DefinitionProblem] = []
    seen: dict[str, str] = {}
    for path in paths:
        try:
            definition = load_definition_file(
                path, known_producers=known_producers, max_timeout=max_timeout
            )
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


def _null_fields(data: object, source: str) -> list[DefinitionProblem]:
    """A producer field written with no value (`interval:`) is a mistake in a file, never a
    way to say "unset" (a definition sent to the workers carries unset fields as null)."""
    producers = data.get("producers") if isinstance(data, dict) else None
    return [
        DefinitionProblem(
            source,
            f"producers.{name}.{key}",
            "is empty (null): give it a value, or leave the field out",
        )
        for name, fields in (producers.items() if isinstance(producers, dict) else ())
        if isinstance(fields, dict)
        for key in _NOT_NULL
        if key in fields and fields[key] is None
    ]


def _read(path: Path) -> object:
    source = str(path)
    suffix = path.suffix.lower()
    if suffix not in (".yaml", ".yml", ".json"):
        raise DefinitionError([DefinitionProblem(source, "", "use a .yaml, .yml or .json file")])
    return _parse_text(_read_text(path), source, as_json=suffix == ".json")


def _parse_text(text: str, source: str, *, as_json: bool) -> object:
    try:
        if as_json:
            return json.loads(text, object_pairs_hook=_unique_keys, parse_int=_bounded_int)
        return _load_yaml(text)
    except (json.JSONDecodeError, yaml.YAMLError, DuplicateKeyError, LimitError) as exc:
        kind = "JSON" if as_json else "YAML"
        detail = " ".join(str(exc).split())
        raise DefinitionError(
            [DefinitionProblem(source, "", f"{kind} syntax error: {detail}")]
        ) from None
    except RecursionError:
        problem = f"nested deeper than {MAX_YAML_DEPTH} levels"
        raise DefinitionError([DefinitionProblem(source, "", problem)]) from None
    except (ValueError, TypeError, OverflowError) as exc:  # a YAML value its type cannot hold
        detail = " ".join(str(exc).split())[:200]
        raise DefinitionError([DefinitionProblem(source, "", f"invalid value: {detail}")]) from None


def _read_text(path: Path) -> str:
    """At most MAX_DEFINITION_BYTES + 1 bytes of a regular file, as UTF-8 text.

    Opened without blocking (a FIFO would wait for a writer forever) and checked on the open
    file itself, not on the name, so a symlink to /dev/zero or a FIFO is refused, and a file
    that grows is still read only up to the limit.
    """
    source = str(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as exc:
        raise DefinitionError(
            [DefinitionProblem(source, "", f"cannot read: {exc.strerror}")]
        ) from None
    try:
        status = os.fstat(fd)
        if not stat.S_ISREG(status.st_mode):
            problem = f"cannot read: {_file_kind(status.st_mode)} is not a regular file"
            raise DefinitionError([DefinitionProblem(source, "", problem)])
        data = _read_at_most(fd, MAX_DEFINITION_BYTES + 1)
    except OSError as exc:
        raise DefinitionError(
            [DefinitionProblem(source, "", f"cannot read: {exc.strerror}")]
        ) from None
    finally:
        os.close(fd)
    size = status.st_size
    if len(data) > MAX_DEFINITION_BYTES:
        shown = f"{size} bytes" if size > MAX_DEFINITION_BYTES else "larger"
        problem = f"file is {shown}; the limit is {MAX_DEFINITION_BYTES}"
        raise DefinitionError([DefinitionProblem(source, "", problem)])
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise DefinitionError([DefinitionProblem(source, "", "file is not UTF-8 text")]) from None


def _read_at_most(fd: int, limit: int) -> bytes:
    chunks: list[bytes] = []
    remaining = limit
    while remaining > 0 and (chunk := os.read(fd, min(remaining, 1 << 16))):
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _file_kind(mode: int) -> str:
    kinds = (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    )
    return next((name for check, name in kinds if check(mode)), "it")


class DuplicateKeyError(ValueError):
    """A mapping names the same key twice; YAML and JSON would silently keep the last."""


class LimitError(ValueError):
    """The text is over one of the parser's bounds (aliases, nesting, digits)."""


# An integer this long is refused before int() parses it (int() refuses 4,300+ digits with a
# ValueError, and is quadratic below that); shorter ones past the bounds are refused by path.
_MAX_INT_TEXT = 64


def _bounded_int(text: str) -> int:
    if len(text) > _MAX_INT_TEXT:
        raise LimitError(f"an integer of {len(text)} digits (at most {_MAX_INT_TEXT})")
    return int(text)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    mapping: dict[str, Any] = {}
    for key, value in pairs:
        if key in mapping:
            raise DuplicateKeyError(f"key {key!r} appears twice")
        mapping[key] = value
    return mapping


def _load_yaml(text: str) -> object:
    """Parse YAML with libyaml (pure-Python PyYAML takes ~30 s for a 1 MiB file), after a
    first pass over its events checks the nesting depth and the number of aliases: libyaml's
    composer recurses in C, so 100,000 nested brackets would crash the process."""
    events = _BoundedSafeLoader(text)
    try:
        depth = aliases = values = 0
        while (event := events.get_event()) is not None:
            values += isinstance(event, yaml.NodeEvent)
            if values > MAX_YAML_VALUES:
                raise LimitError(f"more than {MAX_YAML_VALUES} values ({_line(event)})")
            if isinstance(event, yaml.AliasEvent):
                aliases += 1
                if aliases > MAX_YAML_ALIASES:
                    raise LimitError(f"more than {MAX_YAML_ALIASES} aliases ({_line(event)})")
            elif isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_YAML_DEPTH:
                    raise LimitError(f"nested deeper than {MAX_YAML_DEPTH} levels ({_line(event)})")
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
    finally:
        events.dispose()
    loader = _BoundedSafeLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def _line(event: yaml.Event) -> str:
    mark = event.start_mark
    return f"line {mark.line + 1}" if mark is not None else "unknown line"


class _BoundedSafeLoader(yaml.CSafeLoader):
    """libyaml's SafeLoader (no arbitrary objects) that also refuses duplicate keys and
    integers too long to parse. What an alias expands to is bounded after loading, by the
    definition's size."""

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        text = str(node.value)
        if len(text) > _MAX_INT_TEXT:
            raise LimitError(
                f"an integer of {len(text)} characters (at most {_MAX_INT_TEXT}, "
                f"line {node.start_mark.line + 1})"
            )
        return super().construct_yaml_int(node)

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


_BoundedSafeLoader.add_constructor("tag:yaml.org,2002:int", _BoundedSafeLoader.construct_yaml_int)

"""A corpus of malformed definition files, one class per bound of issue 10, written by the tests.

Each case is a file drumline must refuse, naming it, in a bounded time. `write_corpus` writes
them all into a directory and returns (class, path) pairs; `sample_values` gives a few as the
values a deploy task would receive, for the lifecycle.

Lease used for the timeout cases: `LEASE_SECONDS`, so the workers' limit is 80 s.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

LEASE_SECONDS = 100
Case = tuple[str, str, str | bytes | Callable[[Path], None]]  # (class, file name, content)


def _yaml_producer(fields: str, name: str = "wf") -> str:
    return f"name: {name}\nproducers:\n  p:\n    run: demo.noop\n{fields}"


def _json(data: object) -> str:
    return json.dumps(data, allow_nan=True)


def _json_producer(**fields: Any) -> str:
    return _json({"name": "wf", "producers": {"p": {"run": "demo.noop", **fields}}})


def _nested(depth: int) -> str:
    return "[" * depth + "1" + "]" * depth


def _billion_laughs(levels: int, width: int) -> str:
    lines = ['a0: &a0 "lol"']
    for level in range(1, levels):
        refs = ", ".join([f"*a{level - 1}"] * width)
        lines.append(f"a{level}: &a{level} [{refs}]")
    lines.append(
        f"name: wf\nproducers:\n  p:\n    run: demo.noop\n    params: {{x: *a{levels - 1}}}"
    )
    return "\n".join(lines) + "\n"


def _fifo(path: Path) -> None:
    os.mkfifo(path)


def _symlink_to(target: str) -> Callable[[Path], None]:
    return lambda path: path.symlink_to(target)


def _directory(path: Path) -> None:
    path.mkdir()


def _size_cases() -> Iterator[Case]:
    limit = 1024 * 1024
    base = _yaml_producer("    interval: 30s\n")
    yield "size", "comment.yaml", base + "# " + "x" * limit + "\n"
    yield "size", "blob.json", _json_producer(params={"blob": "x" * limit})
    yield "size", "spaces.json", _json_producer() + " " * limit
    yield "size", "blob.yaml", _yaml_producer(f"    params: {{blob: {'x' * limit}}}\n")
    # Under 1 MiB as YAML, over it as JSON: quotes and commas make the JSON larger.
    yield "size", "flow.yaml", _yaml_producer(f"    params: {{v: [{'a,' * 380_000}a]}}\n")
    for index in range(3):
        params = {f"k{i}": "v" * 100 for i in range(700 + index * 100)}
        yield "size", f"params{index}.json", _json_producer(params=params)


def _file_kind_cases() -> Iterator[Case]:
    yield "not-regular", "fifo.yaml", _fifo
    yield "not-regular", "fifo.json", _fifo
    yield "not-regular", "zero.yaml", _symlink_to("/dev/zero")
    yield "not-regular", "zero.json", _symlink_to("/dev/zero")
    yield "not-regular", "urandom.yml", _symlink_to("/dev/urandom")
    yield "not-regular", "null.yaml", _symlink_to("/dev/null")
    yield "not-regular", "dir.yaml", _directory
    yield "not-regular", "dir.json", _directory
    yield "not-regular", "root.yaml", _symlink_to("/")


def _depth_cases() -> Iterator[Case]:
    for depth in (33, 40, 64, 65, 100, 500, 5000, 100_000):
        yield (
            "depth",
            f"params-{depth}.yaml",
            _yaml_producer(f"    params: {{x: {_nested(depth)}}}\n"),
        )
        yield (
            "depth",
            f"params-{depth}.json",
            _json_producer(params={"x": "DEEP"}).replace('"DEEP"', _nested(depth)),
        )
    for depth in (70, 1000):
        yield (
            "depth",
            f"top-{depth}.json",
            _json({"name": "wf", "producers": "X"}).replace('"X"', _nested(depth)),
        )
        yield (
            "depth",
            f"mapping-{depth}.yaml",
            (
                "name: wf\nproducers:\n  p:\n    run: demo.noop\n    params: "
                + "{a: " * depth
                + "1"
                + "}" * depth
                + "\n"
            ),
        )


def _count_cases() -> Iterator[Case]:
    for count in (1001, 1500, 5000):
        producers = {f"p{i}": {"run": "demo.noop", "interval": "1m"} for i in range(count)}
        yield (
            "producer-count",
            f"producers-{count}.json",
            _json({"name": "wf", "producers": producers}),
        )
        lines = "".join(f"  p{i}: {{run: demo.noop}}\n" for i in range(count))
        yield "producer-count", f"producers-{count}.yaml", f"name: wf\nproducers:\n{lines}"


def _alias_cases() -> Iterator[Case]:
    for levels, width in ((9, 10), (10, 10), (6, 30), (20, 2), (30, 2), (5, 100)):
        yield "yaml-alias", f"laughs-{levels}x{width}.yaml", _billion_laughs(levels, width)
    many = "".join(f"      a{i}: *s\n" for i in range(150))
    yield "yaml-alias", "many-aliases.yaml", _yaml_producer(f"    params:\n      s: &s 1\n{many}")
    yield "yaml-alias", "recursive.yaml", _yaml_producer("    params: &r {self: *r}\n")
    yield "yaml-alias", "recursive-list.yaml", _yaml_producer("    params: {x: &l [*l]}\n")


_YAML_TYPES = {
    "date": "2026-01-01",
    "timestamp": "2026-01-01T10:00:00Z",
    "timestamp-space": "2001-12-14 21:59:43.10 -5",
    "set": "!!set {a, b}",
    "binary": "!!binary aGVsbG8=",
    "omap": "!!omap [a: 1, b: 2]",
    "pairs": "!!pairs [a: 1, a: 2]",
    "bad-timestamp": "!!timestamp 2026-13-45",
    "bad-binary": "!!binary '%%%'",
    "python-tuple": "!!python/tuple [1, 2]",
    "python-name": "!!python/name:os.system",
}


def _yaml_type_cases() -> Iterator[Case]:
    for kind, value in _YAML_TYPES.items():
        yield "yaml-type", f"params-{kind}.yaml", _yaml_producer(f"    params: {{v: {value}}}\n")
        yield "yaml-type", f"list-{kind}.yaml", _yaml_producer(f"    params: {{v: [1, {value}]}}\n")
        yield (
            "yaml-type",
            f"field-{kind}.yaml",
            (f"name: wf\ndescription: {value}\nproducers:\n  p: {{run: demo.noop}}\n"),
        )


def _number_cases() -> Iterator[Case]:
    for text in (".nan", ".NaN", ".inf", "-.inf", "+.inf", "1.0e+400", "-1.5e+999"):
        yield "nan", f"yaml{text}.yaml", _yaml_producer(f"    params: {{v: {text}}}\n")
        yield (
            "nan",
            f"yaml-deep{text}.yaml",
            _yaml_producer(f"    params: {{v: {{w: [{text}]}}}}\n"),
        )
    for text in ("NaN", "Infinity", "-Infinity", "1e400", "-1e999"):
        yield "nan", f"json-{text}.json", _json_producer(params={"v": "X"}).replace('"X"', text)
        yield (
            "nan",
            f"json-list-{text}.json",
            _json_producer(params={"v": ["X"]}).replace('"X"', text),
        )
        yield (
            "nan",
            f"json-field-{text}.json",
            _json(
                {"name": "wf", "description": "X", "producers": {"p": {"run": "demo.noop"}}}
            ).replace('"X"', text),
        )


def _key_cases() -> Iterator[Case]:
    keys = {
        "int-and-str": "{1: x, '1': y}",
        "int": "{1: x}",
        "float": "{1.5: x}",
        "bool": "{true: x}",
        "null": "{null: x}",
        "date": "{2026-01-01: x}",
        "list": "{[1, 2]: x}",
        "map": "{{a: 1}: x}",
        "bool-and-str": "{true: x, 'True': y}",
        "dup": "{a: x, a: y}",
    }
    for kind, mapping in keys.items():
        yield "keys", f"params-{kind}.yaml", _yaml_producer(f"    params: {mapping}\n")
        yield "keys", f"nested-{kind}.yaml", _yaml_producer(f"    params: {{n: {mapping}}}\n")
    yield "keys", "top-int.yaml", "name: wf\n1: x\nproducers:\n  p: {run: demo.noop}\n"
    yield "keys", "producer-field-int.yaml", _yaml_producer("    1: x\n")
    yield (
        "keys",
        "dup.json",
        '{"name": "wf", "producers": {"p": {"run": "demo.noop", "params": {"a": 1, "a": 2}}}}',
    )


_P = '"p": {"run": "demo.noop"'
_TEXT_TEMPLATES = [
    ("value", '{"name": "wf", "producers": {' + _P + ', "params": {"v": "aESCb"}}}}'),
    ("key", '{"name": "wf", "producers": {' + _P + ', "params": {"aESCb": 1}}}}'),
    ("name", '{"name": "wfESC", "producers": {' + _P + "}}}"),
    ("description", '{"name": "wf", "description": "ESC", "producers": {' + _P + "}}}"),
    ("producer", '{"name": "wf", "producers": {"pESC": {"run": "demo.noop"}}}'),
    ("cron", '{"name": "wf", "producers": {' + _P + ', "cron": "* * * * *ESC"}}}'),
]


def _text_cases() -> Iterator[Case]:
    for kind, escape in (
        ("nul", "\\u0000"),
        ("surrogate", "\\ud800"),
        ("low-surrogate", "\\udfff"),
    ):
        for where, template in _TEXT_TEMPLATES:
            yield "text", f"{kind}-{where}.json", template.replace("ESC", escape)
        yaml_escape = {"nul": "\\0", "surrogate": "\\ud800", "low-surrogate": "\\udfff"}[kind]
        yield (
            "text",
            f"{kind}-value.yaml",
            _yaml_producer(f'    params: {{v: "a{yaml_escape}b"}}\n'),
        )
        yield "text", f"{kind}-key.yaml", _yaml_producer(f'    params: {{"a{yaml_escape}": 1}}\n')
        yield (
            "text",
            f"{kind}-description.yaml",
            f'name: wf\ndescription: "{yaml_escape}"\nproducers:\n  p: {{run: demo.noop}}\n',
        )
    yield "text", "raw-nul.yaml", _yaml_producer("    params: {v: a\x00b}\n")
    yield "text", "raw-nul.json", _json_producer(params={"v": "X"}).replace('"X"', '"a\x00b"')


def _int_cases() -> Iterator[Case]:
    for digits in (31, 64, 65, 4300, 4301, 5000, 100_000):
        number = "9" * digits
        yield "huge-int", f"params-{digits}.yaml", _yaml_producer(f"    params: {{v: {number}}}\n")
        yield (
            "huge-int",
            f"params-{digits}.json",
            _json_producer(params={"v": "X"}).replace('"X"', number),
        )
        yield "huge-int", f"interval-{digits}.yaml", _yaml_producer(f"    interval: {number}s\n")
        yield "huge-int", f"interval-{digits}.json", _json_producer(interval=f"{number}s")
        yield (
            "huge-int",
            f"field-{digits}.yaml",
            f"name: {number}\nproducers:\n  p: {{run: demo.noop}}\n",
        )
    yield "huge-int", "hex.yaml", _yaml_producer(f"    params: {{v: 0x{'f' * 5000}}}\n")
    yield "huge-int", "underscores.yaml", _yaml_producer(f"    params: {{v: {'9_' * 3000}9}}\n")
    yield (
        "huge-int",
        "negative.json",
        _json_producer(params={"v": "X"}).replace('"X"', "-" + "9" * 5000),
    )


_BAD_CRONS = [
    "5-1 * * * *",
    "0 5-1 * * *",
    "0 0 31-1 * *",
    "0 0 * 12-1 *",
    "0 0 * DEC-JAN *",
    "0 0 * * 5-1",
    "0 0 * * FRI-MON",
    "0 0 * * SAT-MON",
    "59-0 * * * * *",
    "*/99999999999999999999 * * * *",
    "*/61 * * * *",
    "0 */25 * * *",
    "0 0 */32 * *",
    "0 0 * */13 *",
    "0 0 * * */8",
    "*/61 * * * * *",
    "1-59/100 * * * *",
    "0 0 1-31/" + "9" * 5000 + " * *",
    "*/0 * * * *",
    "*/-1 * * * *",
    "* * * * * * *",
    "99999999999999999999 * * * *",
]


def _cron_cases() -> Iterator[Case]:
    for index, cron in enumerate(_BAD_CRONS):
        yield "cron", f"cron-{index}.yaml", _yaml_producer(f"    cron: '{cron}'\n")
        yield "cron", f"cron-{index}.json", _json_producer(cron=cron)


def _null_cases() -> Iterator[Case]:
    for field in ("interval", "cron", "timezone", "timeout", "params", "run"):
        for spelling, value in (("null", " null"), ("empty", ""), ("tilde", " ~")):
            text = _yaml_producer(f"    {field}:{value}\n")
            if field == "run":
                text = f"name: wf\nproducers:\n  p:\n    run:{value}\n"
            yield "null", f"{field}-{spelling}.yaml", text
        yield "null", f"{field}-null.json", _json_producer(**{field: None})


def _timeout_cases() -> Iterator[Case]:
    for timeout in ("81s", "2m", "1h", "1d", "1w", "1m21s", "99999999999999s"):
        yield (
            "timeout",
            f"timeout-{timeout}.yaml",
            _yaml_producer(f"    interval: 5m\n    timeout: {timeout}\n"),
        )
        yield "timeout", f"timeout-{timeout}.json", _json_producer(interval="5m", timeout=timeout)


_BAD_ZONES = [
    "localtime",
    "posixrules",
    "Factory",
    "right/UTC",
    "right/Europe/Berlin",
    "posix/UTC",
    "posix/America/New_York",
    "/etc/localtime",
    "../zoneinfo/UTC",
    "Europe/../Europe/Berlin",
    "zone.tab",
    "tzdata.zi",
    "leapseconds",
    "utc",
    "UTC ",
    "Mars/Olympus",
]


def _zone_cases() -> Iterator[Case]:
    for index, zone in enumerate(_BAD_ZONES):
        yield (
            "timezone",
            f"zone-{index}.yaml",
            _yaml_producer(f"    cron: '0 9 * * *'\n    timezone: '{zone}'\n"),
        )
        yield "timezone", f"zone-{index}.json", _json_producer(cron="0 9 * * *", timezone=zone)


CLASSES: list[Callable[[], Iterator[Case]]] = [
    _size_cases,
    _file_kind_cases,
    _depth_cases,
    _count_cases,
    _alias_cases,
    _yaml_type_cases,
    _number_cases,
    _key_cases,
    _text_cases,
    _int_cases,
    _cron_cases,
    _null_cases,
    _timeout_cases,
    _zone_cases,
]


def write_corpus(directory: Path) -> list[tuple[str, Path]]:
    """Write every case into `directory` (a subdirectory per class); (class, path) each."""
    written: list[tuple[str, Path]] = []
    for cases in CLASSES:
        for kind, name, content in cases():
            folder = directory / kind
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / name
            assert not path.exists() and not path.is_symlink(), f"two cases named {path}"
            if callable(content):
                content(path)
            elif isinstance(content, bytes):
                path.write_bytes(content)
            else:
                path.write_text(content, encoding="utf-8", errors="surrogatepass")
            written.append((kind, path))
    return written

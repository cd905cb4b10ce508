"""Plain JSON with bounds: the one check for every JSON value drumline accepts from outside.

Definitions' `params`, a producer's `result` and `state`, and every argument decoded from the
broker pass through `check_plain_json` before anything stores, pickles or runs them. It walks
the value with an explicit stack, so a value nested ten thousand levels deep is refused with a
path instead of exhausting the interpreter's recursion limit (which, inside Celery's prefork
pool, kills the worker's main process).

"Plain" means what JSON itself can say and both databases can store: objects with string keys,
arrays, strings without NUL or lone surrogates, finite numbers, booleans and null. What YAML or
Python add on top (dates, sets, bytes, tuples, NaN, non-string keys) is refused, never coerced.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

_SCALARS = (str, bool, int, float, type(None))


class PlainJsonError(ValueError):
    """A value is not plain JSON, or is over one of its bounds; the message names the path."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


@dataclass(frozen=True)
class JsonBounds:
    """How large a JSON value may be: nesting depth, encoded size, digits of an integer."""

    max_depth: int = 32
    max_bytes: int = 64 * 1024
    max_int_digits: int = 30


def check_plain_json(value: Any, bounds: JsonBounds, *, path: str = "$") -> None:
    """Raise PlainJsonError naming the first offending path if `value` is not plain JSON within
    `bounds`. The size is an estimate of the compact JSON encoding, accumulated while walking,
    so the walk stops as soon as the bound is passed instead of encoding a huge value first."""
    size = 0
    stack: list[tuple[Any, str, int]] = [(value, path, 0)]
    while stack:
        item, where, depth = stack.pop()
        if depth > bounds.max_depth:
            raise PlainJsonError(where, f"nested deeper than {bounds.max_depth} levels")
        size += _scalar_size(item, where, bounds) if isinstance(item, _SCALARS) else 2
        if isinstance(item, dict):
            for key, child in item.items():
                if not isinstance(key, str):
                    kind = type(key).__name__
                    raise PlainJsonError(where, f"key {key!r} is a {kind}; keys must be strings")
                _check_text(key, f"{where} key {key[:40]!r}")
                size += len(key.encode("utf-8", "surrogatepass")) + 4
                stack.append((child, f"{where}.{key[:40]}", depth + 1))
        elif isinstance(item, list):
            size += len(item)
            stack.extend((child, f"{where}[{i}]", depth + 1) for i, child in enumerate(item))
        elif not isinstance(item, _SCALARS):
            raise PlainJsonError(where, f"a {type(item).__name__} is not plain JSON")
        if size > bounds.max_bytes:
            raise PlainJsonError(where, f"larger than {bounds.max_bytes} bytes as JSON")


def _scalar_size(item: Any, where: str, bounds: JsonBounds) -> int:
    if isinstance(item, str):
        _check_text(item, where)
        return len(item.encode("utf-8", "surrogatepass")) + 2
    if isinstance(item, bool) or item is None:
        return 5
    if isinstance(item, int):
        # Bounded before converting: str() of a huge int is quadratic, and refused past 4300.
        if abs(item) >= 10**bounds.max_int_digits:
            raise PlainJsonError(where, f"integer has more than {bounds.max_int_digits} digits")
        return len(str(item))
    if not math.isfinite(item):
        raise PlainJsonError(where, f"{item!r} is not a JSON number")
    return len(repr(item))


def _check_text(text: str, where: str) -> None:
    if "\x00" in text:
        raise PlainJsonError(where, "contains a NUL character")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise PlainJsonError(where, "contains a lone surrogate (not valid Unicode)") from None

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


# Where a value sits, rendered only for a refusal: a (parent, key or index) link per level, the
# root a string. Formatting every child's path up front cost more than checking the value.
_Where = str | tuple["_Where", str | int]


def check_plain_json(value: Any, bounds: JsonBounds, *, path: str = "$") -> None:
    """Raise PlainJsonError naming the first offending path if `value` is not plain JSON within
    `bounds`. The size is an estimate of the compact JSON encoding, accumulated while walking,
    so the walk stops as soon as the bound is passed instead of encoding a huge value first."""
    size = 0
    max_depth, max_bytes = bounds.max_depth, bounds.max_bytes
    int_limit = 10**bounds.max_int_digits
    stack: list[tuple[Any, _Where, int]] = [(value, path, 0)]
    while stack:
        item, where, depth = stack.pop()
        if depth > max_depth:
            raise PlainJsonError(_render(where), f"nested deeper than {max_depth} levels")
        # A container's common children (ASCII strings, small ints, null, booleans) are sized
        # on the spot, not walked: that took most of the time of checking a message's headers.
        on_the_spot = depth < max_depth
        if isinstance(item, str):
            size += _text_size(item, where) + 2
        elif isinstance(item, dict):
            size += 2
            for key, child in item.items():
                if type(key) is str and key.isascii() and "\x00" not in key:
                    size += len(key) + 4
                elif isinstance(key, str):
                    size += _text_size(key, where, key=True) + 4
                else:
                    kind = type(key).__name__
                    raise PlainJsonError(
                        _render(where), f"key {key!r} is a {kind}; keys must be strings"
                    )
                child_size = _simple_size(child, int_limit) if on_the_spot else -1
                if child_size < 0:
                    stack.append((child, (where, key), depth + 1))
                elif size + child_size > max_bytes:
                    raise PlainJsonError(
                        _render((where, key)), f"larger than {max_bytes} bytes as JSON"
                    )
                else:
                    size += child_size
        elif isinstance(item, list):
            size += 2 + len(item)
            for i, child in enumerate(item):
                child_size = _simple_size(child, int_limit) if on_the_spot else -1
                if child_size < 0:
                    stack.append((child, (where, i), depth + 1))
                elif size + child_size > max_bytes:
                    raise PlainJsonError(
                        _render((where, i)), f"larger than {max_bytes} bytes as JSON"
                    )
                else:
                    size += child_size
        elif isinstance(item, _SCALARS):
            size += _scalar_size(item, where, bounds)
        else:
            raise PlainJsonError(_render(where), f"a {type(item).__name__} is not plain JSON")
        if size > max_bytes:
            raise PlainJsonError(_render(where), f"larger than {max_bytes} bytes as JSON")


def _simple_size(item: Any, int_limit: int) -> int:
    """The JSON size of a value that is plain whatever its place (an ASCII string without NUL,
    an int within the bound, null, a boolean), or -1: walk it, with its path."""
    kind = type(item)
    if kind is str:
        return len(item) + 2 if item.isascii() and "\x00" not in item else -1
    if kind is int:
        return len(str(item)) if -int_limit < item < int_limit else -1
    return 5 if item is None or kind is bool else -1


def _render(where: _Where) -> str:
    steps: list[str] = []
    while isinstance(where, tuple):
        where, step = where
        steps.append(f".{step[:40]}" if isinstance(step, str) else f"[{step}]")
    return where + "".join(reversed(steps))


def _scalar_size(item: Any, where: _Where, bounds: JsonBounds) -> int:
    if isinstance(item, bool) or item is None:
        return 5
    if isinstance(item, int):
        # Bounded before converting: str() of a huge int is quadratic, and refused past 4300.
        if abs(item) >= 10**bounds.max_int_digits:
            raise PlainJsonError(
                _render(where), f"integer has more than {bounds.max_int_digits} digits"
            )
        return len(str(item))
    if not math.isfinite(item):
        raise PlainJsonError(_render(where), f"{item!r} is not a JSON number")
    return len(repr(item))


def _text_size(text: str, where: _Where, *, key: bool = False) -> int:
    """The UTF-8 size of a string or (`key`) of a key of the object at `where`: one encoding
    both checks it and measures it."""
    if "\x00" in text:
        raise PlainJsonError(_text_where(text, where, key), "contains a NUL character")
    if text.isascii():
        return len(text)  # its own UTF-8 encoding, and no lone surrogate
    try:
        return len(text.encode("utf-8"))
    except UnicodeEncodeError:
        problem = "contains a lone surrogate (not valid Unicode)"
        raise PlainJsonError(_text_where(text, where, key), problem) from None


def _text_where(text: str, where: _Where, key: bool) -> str:
    return f"{_render(where)} key {text[:40]!r}" if key else _render(where)

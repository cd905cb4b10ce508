"""The one check for JSON from outside: plain values pass, everything else names its path."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from models.plain_json import JsonBounds, PlainJsonError, check_plain_json

BOUNDS = JsonBounds(max_depth=8, max_bytes=1000, max_int_digits=12)

plain = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**11), 10**11)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=5),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(
            st.text(max_size=3).filter(lambda k: "\x00" not in k), children, max_size=3
        )
    ),
    max_leaves=10,
)


@given(plain)
def test_small_plain_values_pass(value: Any) -> None:
    check_plain_json(value, JsonBounds(max_depth=20, max_bytes=10_000, max_int_digits=12))


def nested(depth: int) -> Any:
    value: Any = []
    for _ in range(depth):
        value = [value]
    return value


def wrapped(value: Any, times: int) -> Any:
    """`value` inside `times` one-item lists: at depth `times`."""
    for _ in range(times):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("value", "path", "problem"),
    [
        (nested(10_000), "$" + "[0]" * 9, "nested deeper than 8 levels"),
        ({"a": "x" * 2000}, "$.a", "larger than 1000 bytes"),
        (["x" * 10] * 200, "$[", "larger than 1000 bytes"),
        ({"n": 10**12}, "$.n", "more than 12 digits"),
        ({"n": -(10**5000)}, "$.n", "more than 12 digits"),
        ({"f": float("nan")}, "$.f", "not a JSON number"),
        ({"f": float("-inf")}, "$.f", "not a JSON number"),
        ({1: "x"}, "$", "keys must be strings"),
        ({"d": datetime.date(2026, 1, 1)}, "$.d", "a date is not plain JSON"),
        ({"s": {1, 2}}, "$.s", "a set is not plain JSON"),
        ({"b": b"\x00"}, "$.b", "a bytes is not plain JSON"),
        ({"t": (1, 2)}, "$.t", "a tuple is not plain JSON"),
        ({"z": "a\x00b"}, "$.z", "NUL"),
        ({"a\x00": 1}, "$ key", "NUL"),
        ({"u": "\ud800"}, "$.u", "lone surrogate"),
        # Simple children of a container are sized on the spot: the same refusals hold.
        (wrapped("x", 9), "$" + "[0]" * 9, "nested deeper than 8 levels"),
        (wrapped({"k": 1}, 8), "$" + "[0]" * 8 + ".k", "nested deeper than 8 levels"),
        ({f"k{i}": "v" for i in range(300)}, "$.k", "larger than 1000 bytes"),
        ([None] * 300, "$[", "larger than 1000 bytes"),
        ([1, 10**12], "$[1]", "more than 12 digits"),
        (["ok", "\ud800"], "$[1]", "lone surrogate"),
        (["ok", "a\x00"], "$[1]", "NUL"),
        ({"ok": "é" * 600}, "$.ok", "larger than 1000 bytes"),
    ],
)
def test_refusals_name_the_path_and_the_problem(value: Any, path: str, problem: str) -> None:
    with pytest.raises(PlainJsonError) as refused:
        check_plain_json(value, BOUNDS)
    assert refused.value.path.startswith(path)
    assert problem in refused.value.problem


def test_the_root_path_can_be_named() -> None:
    with pytest.raises(PlainJsonError, match=r"^params\.x: "):
        check_plain_json({"x": float("nan")}, BOUNDS, path="params")

"""The bounds of a producer's result and state, read from DRUMLINE_* like every setting."""

from __future__ import annotations

import pytest

from models.errors import SettingsError
from models.plain_json import JsonBounds
from workers.settings import Settings

BROKER = {"DRUMLINE_BROKER_URL": "redis://127.0.0.1:6379/0"}


def test_defaults_are_64_kib_and_32_levels() -> None:
    settings = Settings.from_env(BROKER)
    expected = JsonBounds(max_depth=32, max_bytes=64 * 1024)
    assert (settings.result_bounds, settings.state_bounds) == (expected, expected)


def test_each_bound_has_its_own_variable() -> None:
    settings = Settings.from_env(
        {
            **BROKER,
            "DRUMLINE_RESULT_MAX_BYTES": "1000",
            "DRUMLINE_STATE_MAX_BYTES": "2000",
            "DRUMLINE_OUTPUT_MAX_DEPTH": "5",
        }
    )
    assert settings.result_bounds == JsonBounds(max_depth=5, max_bytes=1000)
    assert settings.state_bounds == JsonBounds(max_depth=5, max_bytes=2000)


@pytest.mark.parametrize(
    ("name", "value", "problem"),
    [
        ("DRUMLINE_RESULT_MAX_BYTES", "1.5e3x", "is not a number"),
        ("DRUMLINE_RESULT_MAX_BYTES", "10", "must be at least 64"),
        ("DRUMLINE_STATE_MAX_BYTES", "100.5", "must be a whole number"),
        ("DRUMLINE_STATE_MAX_BYTES", "inf", "must be at most 16777216"),
        ("DRUMLINE_OUTPUT_MAX_DEPTH", "nan", "must be at least 1"),
        ("DRUMLINE_OUTPUT_MAX_DEPTH", "1000", "must be at most 256"),
    ],
)
def test_a_bad_bound_is_refused_naming_its_variable(name: str, value: str, problem: str) -> None:
    with pytest.raises(SettingsError) as refused:
        Settings.from_env({**BROKER, name: value})
    assert name in str(refused.value)
    assert problem in str(refused.value)

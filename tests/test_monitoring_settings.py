"""The monitoring settings: bad values are refused naming the variable, never echoing a secret."""

from __future__ import annotations

from pathlib import Path

import pytest

from models.errors import SettingsError
from workers.settings import Settings

BASE = {"DRUMLINE_DATA_DIR": "/nonexistent"}


def test_metrics_default_to_the_data_dir_and_can_be_turned_off() -> None:
    assert Settings.from_env(BASE).metrics_dir == Path("/nonexistent/metrics")
    assert Settings.from_env({**BASE, "DRUMLINE_METRICS": "off"}).metrics_dir is None
    moved = Settings.from_env({**BASE, "DRUMLINE_METRICS_DIR": "/var/lib/drumline-metrics"})
    assert moved.metrics_dir == Path("/var/lib/drumline-metrics")


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("DRUMLINE_METRICS", "yes", "DRUMLINE_METRICS='yes' must be on or off"),
        ("DRUMLINE_METRICS_PRODUCER_LABELS", "1", "must be on or off"),
        (
            "DRUMLINE_BEAT_STALE_SECONDS",
            "0.5",
            "DRUMLINE_BEAT_STALE_SECONDS='0.5' must be at least 1",
        ),
        ("DRUMLINE_EXPORTER_BASIC_AUTH", "justapassword", "must be user:password"),
        ("DRUMLINE_EXPORTER_BASIC_AUTH", "admin:", "must be user:password"),
    ],
)
def test_a_bad_value_is_refused_naming_the_variable(
    variable: str, value: str, message: str
) -> None:
    with pytest.raises(SettingsError) as refused:
        Settings.from_env({**BASE, variable: value})
    assert message in str(refused.value)
    if variable == "DRUMLINE_EXPORTER_BASIC_AUTH":
        assert value not in str(refused.value)

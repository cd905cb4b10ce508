"""`drumline validate` (workers/cli/validate_command.py): offline checks and upcoming fire times."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from models.fire_times import upcoming
from workers.cli.validate_command import validate
from workers.registry import registered_names

REPO = Path(__file__).resolve().parent.parent
AFTER = "2026-10-24T12:00:00Z"

FLOW_YAML = """\
name: demo
producers:
  fast:
    run: demo.noop
    interval: 30s
  slow:
    run: demo.counter
    interval: 90m
  nightly:
    run: demo.counter
    cron: "30 2 * * *"
    timezone: Europe/Berlin
  new-york:
    run: demo.sleep
    cron: "30 1 * * *"
    timezone: America/New_York
  tokyo:
    run: demo.noop
    cron: "0 9 * * *"
    timezone: Asia/Tokyo
  seconds:
    run: demo.noop
    cron: "15 */10 * * * *"
  never:
    run: demo.noop
    cron: "0 0 30 2 *"
  by-hand:
    run: demo.sleep
"""

EXPECTED_TEXT = """\
demo: valid, 8 producer(s)
  fast (demo.noop): every 30s
    2026-10-24T12:00:30Z
    2026-10-24T12:01:00Z
    2026-10-24T12:01:30Z
  slow (demo.counter): every 1h30m
    2026-10-24T13:30:00Z
    2026-10-24T15:00:00Z
    2026-10-24T16:30:00Z
  nightly (demo.counter): cron '30 2 * * *' (Europe/Berlin)
    2026-10-25T00:30:00Z  (2026-10-25T02:30:00+02:00 Europe/Berlin)
    2026-10-26T01:30:00Z  (2026-10-26T02:30:00+01:00 Europe/Berlin)
    2026-10-27T01:30:00Z  (2026-10-27T02:30:00+01:00 Europe/Berlin)
  new-york (demo.sleep): cron '30 1 * * *' (America/New_York)
    2026-10-25T05:30:00Z  (2026-10-25T01:30:00-04:00 America/New_York)
    2026-10-26T05:30:00Z  (2026-10-26T01:30:00-04:00 America/New_York)
    2026-10-27T05:30:00Z  (2026-10-27T01:30:00-04:00 America/New_York)
  tokyo (demo.noop): cron '0 9 * * *' (Asia/Tokyo)
    2026-10-25T00:00:00Z  (2026-10-25T09:00:00+09:00 Asia/Tokyo)
    2026-10-26T00:00:00Z  (2026-10-26T09:00:00+09:00 Asia/Tokyo)
    2026-10-27T00:00:00Z  (2026-10-27T09:00:00+09:00 Asia/Tokyo)
  seconds (demo.noop): cron '15 */10 * * * *' (UTC)
    2026-10-24T12:00:15Z
    2026-10-24T12:10:15Z
    2026-10-24T12:20:15Z
  never (demo.noop): cron '0 0 30 2 *' (UTC), exhausted (never runs again)
  by-hand (demo.sleep): manual only
"""

EXPECTED_NEXT = {
    "fast": ["2026-10-24T12:00:30+00:00", "2026-10-24T12:01:00+00:00", "2026-10-24T12:01:30+00:00"],
    "slow": ["2026-10-24T13:30:00+00:00", "2026-10-24T15:00:00+00:00", "2026-10-24T16:30:00+00:00"],
    "nightly": [
        "2026-10-25T00:30:00+00:00",
        "2026-10-26T01:30:00+00:00",
        "2026-10-27T01:30:00+00:00",
    ],
    "new-york": [
        "2026-10-25T05:30:00+00:00",
        "2026-10-26T05:30:00+00:00",
        "2026-10-27T05:30:00+00:00",
    ],
    "tokyo": [
        "2026-10-25T00:00:00+00:00",
        "2026-10-26T00:00:00+00:00",
        "2026-10-27T00:00:00+00:00",
    ],
    # Seconds first: second 15 of every tenth minute.
    "seconds": [
        "2026-10-24T12:00:15+00:00",
        "2026-10-24T12:10:15+00:00",
        "2026-10-24T12:20:15+00:00",
    ],
    "never": [],
    "by-hand": [],
}


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """`validate` reads DRUMLINE_* settings; keep whatever the shell has out of these tests."""
    for key in list(os.environ):
        if key.startswith("DRUMLINE_"):
            monkeypatch.delenv(key)


def invoke(*args: str | Path) -> Result:
    return CliRunner().invoke(validate, [str(a) for a in args], catch_exceptions=False)


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def flow(tmp_path: Path) -> Path:
    return write(tmp_path / "flow.yaml", FLOW_YAML)


# --------------------------------------------------------------------------------------------
# Valid files
# --------------------------------------------------------------------------------------------


def test_valid_file_prints_every_producer_and_exact_fire_times(flow: Path) -> None:
    result = invoke(flow, "--next", "3", "--after", AFTER)
    assert result.exit_code == 0, result.output
    assert result.stdout == EXPECTED_TEXT
    assert result.stderr == ""


@pytest.mark.parametrize(
    "after",
    [
        "2026-10-24T12:00:00Z",
        "2026-10-24T12:00:00+00:00",
        "2026-10-24T14:00:00+02:00",
        "2026-10-24T08:00:00-04:00",
    ],
)
def test_after_with_any_offset_means_the_same_instant(flow: Path, after: str) -> None:
    result = invoke(flow, "--next", "3", "--after", after)
    assert result.exit_code == 0, result.output
    assert result.stdout == EXPECTED_TEXT


def test_json_output_shape_and_values(flow: Path) -> None:
    result = invoke(flow, "--next", "3", "--after", AFTER, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert list(data) == ["workflows"]
    (workflow,) = data["workflows"]
    assert workflow["name"] == "demo"
    producers = {p["name"]: p for p in workflow["producers"]}
    assert list(producers) == list(EXPECTED_NEXT)
    for name, producer in producers.items():
        assert {"name", "run", "schedule", "next"} <= set(producer)
        assert producer["next"] == EXPECTED_NEXT[name], name
    assert producers["fast"]["run"] == "demo.noop"
    assert producers["fast"]["schedule"] == "every 30s"
    assert producers["nightly"]["schedule"] == "cron '30 2 * * *' (Europe/Berlin)"
    assert producers["never"]["next"] == []
    assert "exhausted" in producers["never"]["schedule"]
    assert producers["by-hand"]["schedule"] == "manual only"
    assert producers["by-hand"]["next"] == []


@pytest.mark.parametrize(
    ("definition", "after", "expected"),
    [
        # Berlin spring forward: 02:30 does not exist -> runs at the jump, 01:00Z.
        (
            "cron: '30 2 * * *'\n    timezone: Europe/Berlin",
            "2026-03-28T12:00:00Z",
            ["2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z", "2026-03-31T00:30:00Z"],
        ),
        # New York fall back: 01:30 happens twice -> runs once, in EDT.
        (
            "cron: '30 1 * * *'\n    timezone: America/New_York",
            "2026-10-31T12:00:00Z",
            ["2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z", "2026-11-03T06:30:00Z"],
        ),
        # New York spring forward: 02:30 does not exist -> runs at 07:00Z.
        (
            "cron: '30 2 * * *'\n    timezone: America/New_York",
            "2026-03-07T12:00:00Z",
            ["2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z", "2026-03-10T06:30:00Z"],
        ),
        # Wildcard job through Berlin's fall back: every real hour.
        (
            "cron: '30 * * * *'\n    timezone: Europe/Berlin",
            "2026-10-25T00:00:00Z",
            ["2026-10-25T00:30:00Z", "2026-10-25T01:30:00Z", "2026-10-25T02:30:00Z"],
        ),
        # Interval grid continues from the previous fire time.
        (
            "interval: 1w2d3h4m5s",
            AFTER,
            ["2026-11-02T15:04:05Z", "2026-11-11T18:08:10Z", "2026-11-20T21:12:15Z"],
        ),
    ],
)
def test_fire_times_across_dst(
    tmp_path: Path, definition: str, after: str, expected: list[str]
) -> None:
    path = write(
        tmp_path / "one.yaml",
        f"name: one\nproducers:\n  p:\n    run: demo.noop\n    {definition}\n",
    )
    result = invoke(path, "--next", "3", "--after", after)
    assert result.exit_code == 0, result.output
    times = [line.split()[0] for line in result.stdout.splitlines() if line.startswith("    ")]
    assert times == expected


def test_local_time_is_shown_only_for_non_utc_producers(flow: Path) -> None:
    result = invoke(flow, "--next", "1", "--after", AFTER)
    lines = result.stdout.splitlines()
    assert "    2026-10-24T12:00:30Z" in lines  # interval: UTC, no suffix
    assert "    2026-10-24T12:00:15Z" in lines  # UTC cron: no suffix
    assert "    2026-10-25T00:30:00Z  (2026-10-25T02:30:00+02:00 Europe/Berlin)" in lines
    assert "    2026-10-25T00:00:00Z  (2026-10-25T09:00:00+09:00 Asia/Tokyo)" in lines


def test_default_count_is_five(flow: Path) -> None:
    result = invoke(flow, "--after", AFTER, "--json")
    producers = json.loads(result.stdout)["workflows"][0]["producers"]
    counts = {p["name"]: len(p["next"]) for p in producers}
    assert counts == {
        "fast": 5,
        "slow": 5,
        "nightly": 5,
        "new-york": 5,
        "tokyo": 5,
        "seconds": 5,
        "never": 0,
        "by-hand": 0,
    }


def test_default_after_is_now(flow: Path) -> None:
    before = datetime.now(UTC)
    result = invoke(flow, "--next", "1", "--json")
    after = datetime.now(UTC)
    assert result.exit_code == 0, result.output
    producers = {p["name"]: p for p in json.loads(result.stdout)["workflows"][0]["producers"]}
    (first,) = producers["fast"]["next"]
    moment = datetime.fromisoformat(first)
    assert before + timedelta(seconds=30) <= moment <= after + timedelta(seconds=30)


def test_several_files_are_all_reported(flow: Path, tmp_path: Path) -> None:
    other = write(
        tmp_path / "other.json",
        json.dumps({"name": "other", "producers": {"x": {"run": "demo.fail", "interval": "1h"}}}),
    )
    result = invoke(flow, other, "--next", "1", "--after", AFTER, "--json")
    assert result.exit_code == 0, result.output
    workflows = json.loads(result.stdout)["workflows"]
    assert [w["name"] for w in workflows] == ["demo", "other"]
    assert workflows[1]["producers"] == [
        {
            "name": "x",
            "run": "demo.fail",
            "schedule": "every 1h",
            "timezone": "UTC",
            "policy": "overlap skip, catchup latest",
            "policies": {},
            "next": ["2026-10-24T13:00:00+00:00"],
            "dst": [],
        }
    ]
    text = invoke(flow, other, "--next", "1", "--after", AFTER)
    assert "demo: valid, 8 producer(s)" in text.stdout
    assert "other: valid, 1 producer(s)" in text.stdout
    assert "  x (demo.fail): every 1h" in text.stdout


def test_upcoming_helper() -> None:
    from models.schedules import compile_schedule

    start = datetime(2026, 10, 24, 12, tzinfo=UTC)
    assert upcoming(None, start, 3) == []
    exhausted = compile_schedule(interval=None, cron="0 0 30 2 *", timezone=None)
    assert upcoming(exhausted, start, 3) == []
    leap = compile_schedule(interval=None, cron="0 0 29 2 *", timezone=None)
    assert upcoming(leap, start, 2) == [
        datetime(2028, 2, 29, tzinfo=UTC),
        datetime(2032, 2, 29, tzinfo=UTC),
    ]


# --------------------------------------------------------------------------------------------
# Invalid files and bad options
# --------------------------------------------------------------------------------------------

BAD_YAML = """\
name: Bad Name
producers:
  p:
    run: demo.nope
    cron: "61 * * * *"
  q:
    run: demo.noop
    interval: 5m
    timezone: UTC
"""


def test_invalid_file_exits_1_with_file_path_message_lines(tmp_path: Path) -> None:
    bad = write(tmp_path / "bad.yaml", BAD_YAML)
    result = invoke(bad, "--after", AFTER)
    assert result.exit_code == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 4
    for line in lines:
        assert re.match(rf"^{re.escape(str(bad))}: [^ :]+: \S.*$", line), line
    assert f"{bad}: name: 'Bad Name' is not valid" in result.stderr
    assert f"{bad}: producers.p.cron: invalid cron '61 * * * *': minute field '61'" in result.stderr
    assert f"{bad}: producers.p.run: no producer named 'demo.nope' is registered" in result.stderr
    assert f"{bad}: producers.q.timezone: timezone applies to cron schedules only" in result.stderr


def test_invalid_file_json(tmp_path: Path) -> None:
    bad = write(tmp_path / "bad.yaml", BAD_YAML)
    result = invoke(bad, "--json", "--after", AFTER)
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert list(data) == ["errors"]
    assert len(data["errors"]) == 4
    for error in data["errors"]:
        assert set(error) == {"file", "path", "message"}
        assert error["file"] == str(bad)
    assert {e["path"] for e in data["errors"]} == {
        "name",
        "producers.p.cron",
        "producers.p.run",
        "producers.q.timezone",
    }


def test_top_level_problem_is_labelled(tmp_path: Path) -> None:
    bad = write(tmp_path / "list.yaml", "- 1\n- 2\n")
    result = invoke(bad)
    assert result.exit_code == 1
    assert result.stderr == f"{bad}: (top level): a definition must be a mapping, not a list\n"
    as_json = json.loads(invoke(bad, "--json").stdout)
    assert as_json == {
        "errors": [
            {"file": str(bad), "path": "", "message": "a definition must be a mapping, not a list"}
        ]
    }


def test_one_bad_file_fails_the_whole_run(flow: Path, tmp_path: Path) -> None:
    missing = tmp_path / "missing.yaml"
    result = invoke(flow, missing, "--after", AFTER)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith(f"{missing}: (top level): cannot read")


def test_duplicate_workflow_names_fail(flow: Path, tmp_path: Path) -> None:
    copy = write(tmp_path / "copy.yaml", FLOW_YAML)
    result = invoke(flow, copy)
    assert result.exit_code == 1
    assert f"{copy}: name: workflow 'demo' is also defined in {flow}" in result.stderr


def test_unknown_run_lists_registered_names(tmp_path: Path) -> None:
    bad = write(tmp_path / "u.yaml", "name: u\nproducers:\n  p:\n    run: team.missing\n")
    result = invoke(bad)
    assert result.exit_code == 1
    names = registered_names()
    assert {"demo.noop", "demo.counter", "demo.sleep", "demo.fail", "demo.flaky"} <= set(names)
    assert result.stderr == (
        f"{bad}: producers.p.run: no producer named 'team.missing' is registered here, where only"
        " the built-ins and the modules in DRUMLINE_PRODUCER_MODULES are (registered: "
        f"{', '.join(names)}); set it to the modules your workers load\n"
    )


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--after", "2026-10-24T12:00:00"], "has no time zone"),
        (["--after", "garbage"], "is not an ISO 8601 instant"),
        (["--after", ""], "is not an ISO 8601 instant"),
        (["--after", "2026-13-01T00:00:00Z"], "is not an ISO 8601 instant"),
        (["--next", "0"], "0 is not in the range 1<=x<=1000"),
        (["--next", "-1"], "--next"),
        (["--next", "1001"], "--next"),
        (["--next", "three"], "'three' is not a valid integer"),
    ],
)
def test_bad_options_exit_2(flow: Path, args: list[str], fragment: str) -> None:
    result = invoke(flow, *args)
    assert result.exit_code == 2
    assert result.stdout == ""
    option = args[0]
    assert f"Invalid value for '{option}'" in result.stderr
    assert fragment in result.stderr


def test_files_are_required() -> None:
    result = invoke()
    assert result.exit_code == 2
    assert "Missing argument 'FILES...'" in result.stderr


# --------------------------------------------------------------------------------------------
# The real console entry point
# --------------------------------------------------------------------------------------------


def test_console_entry_validates_with_configured_producer_modules(tmp_path: Path) -> None:
    modules = tmp_path / "modules"
    modules.mkdir()
    (modules / "team_producers_for_validate.py").write_text(
        "from workers.registry import producer\n\n"
        "@producer('team.fetch')\n"
        "def fetch(context):\n"
        "    return None\n",
        encoding="utf-8",
    )
    flow = write(
        tmp_path / "team.yaml",
        "name: team\nproducers:\n"
        "  fetch:\n    run: team.fetch\n    cron: '30 2 * * *'\n    timezone: Europe/Berlin\n"
        "  demo:\n    run: demo.noop\n    interval: 30s\n",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRUMLINE_")}
    env["PYTHONPATH"] = os.pathsep.join([str(modules), str(REPO)])
    env["DRUMLINE_PRODUCER_MODULES"] = "team_producers_for_validate"
    command = [sys.executable, "-m", "workers.cli.main", "validate", str(flow)]
    completed = subprocess.run(
        [*command, "--next", "3", "--after", AFTER],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout == (
        "team: valid, 2 producer(s)\n"
        "  fetch (team.fetch): cron '30 2 * * *' (Europe/Berlin)\n"
        "    2026-10-25T00:30:00Z  (2026-10-25T02:30:00+02:00 Europe/Berlin)\n"
        "    2026-10-26T01:30:00Z  (2026-10-26T02:30:00+01:00 Europe/Berlin)\n"
        "    2026-10-27T01:30:00Z  (2026-10-27T02:30:00+01:00 Europe/Berlin)\n"
        "  demo (demo.noop): every 30s\n"
        "    2026-10-24T12:00:30Z\n"
        "    2026-10-24T12:01:00Z\n"
        "    2026-10-24T12:01:30Z\n"
    )


# --------------------------------------------------------------------------------------------
# Rule schedules: every form in examples/, and the DST marks
# --------------------------------------------------------------------------------------------

DST_YAML = """\
name: dst
producers:
  nightly:
    run: demo.noop
    cron: "30 2 * * *"
    timezone: Europe/Berlin
    dst: {repeated: both, skipped: skip}
  new-york:
    run: demo.noop
    rrule: "FREQ=DAILY;BYHOUR=2;BYMINUTE=30"
    dtstart: "2026-01-01T02:30:00"
    timezone: America/New_York
"""


def test_validate_marks_what_dst_moved_or_removed_and_the_rule(tmp_path: Path) -> None:
    path = write(tmp_path / "dst.yaml", DST_YAML)
    spring = invoke(path, "--next", "3", "--after", "2026-03-28T00:00:00Z")
    assert spring.exit_code == 0, spring.output
    assert (
        "    not run:  2026-03-29T02:30:00 Europe/Berlin  "
        "[DST removed: in the hour skipped by DST (skipped: skip)]\n"
        "    2026-03-30T00:30:00Z" in spring.stdout
    )
    new_york = invoke(path, "--next", "2", "--after", "2026-03-07T12:00:00Z", "--json")
    producers = json.loads(new_york.stdout)["workflows"][0]["producers"]
    assert producers[1]["next"][0] == "2026-03-08T07:00:00+00:00"  # 03:00 EDT, at the change
    assert producers[1]["dst"] == [
        {
            "at": "2026-03-08T07:00:00+00:00",
            "wall": None,
            "timezone": "UTC",
            "note": "moved: in the hour skipped by DST, runs at the change (skipped: shift)",
        }
    ]
    fall = invoke(path, "--next", "3", "--after", "2026-10-24T12:00:00Z")
    twice = [line for line in fall.stdout.splitlines() if "runs twice (repeated: both)" in line]
    assert [line.split()[0] for line in twice] == ["2026-10-25T00:30:00Z", "2026-10-25T01:30:00Z"]


def test_every_example_validates_and_shows_each_rule_form() -> None:
    examples = sorted((REPO / "examples").glob("*.yaml"))
    env = {**os.environ, "DRUMLINE_PRODUCER_MODULES": "workers.example_producers"}
    env = {key: value for key, value in env.items() if key != "DRUMLINE_DATA_DIR"}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "workers.cli.main",
            "validate",
            *map(str, examples),
            "--next",
            "5",
            "--after",
            "2026-12-01T00:00:00Z",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    for fragment in (
        "cron '*/15 9-16 * * 1-5' (America/New_York) + cron '0 * * * 0,6' (America/New_York)",
        "except 3 exclusion(s)",
        "rrule 'FREQ=MONTHLY;BYDAY=1TU;BYHOUR=10;BYMINUTE=0;COUNT=24'",
        "dst repeated: both, skipped: skip",
        "jitter 10m",
        "once at 2029-12-31T23:00:00Z",
    ):
        assert fragment in result.stdout, fragment

"""The lateness bench's arithmetic: how it splits a start and which targets it reports."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bench.lateness import LoadWindow, percentiles
from bench.report import Results, targets
from bench.task_events import TaskTimes

SLOT = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def _load() -> LoadWindow:
    at = SLOT.timestamp()
    messages = {
        "a": TaskTimes(SLOT, sent=at + 0.010, received=at + 0.030, started=at + 0.035),
        "b": TaskTimes(SLOT, sent=at + 0.020),  # never reached a worker
    }
    runs: list[tuple[str | None, datetime, datetime]] = [
        ("a", SLOT, SLOT + timedelta(milliseconds=41))
    ]
    return LoadWindow(
        per_s=10.0,
        producers=100,
        interval_s=10.0,
        window_s=30.0,
        expected=300,
        messages=messages,
        runs=runs,
        started_in_time=1,
        backlog_start=0,
        backlog_end=0,
        cpu_cores={"beat": 0.1},
        cpu_pressure=0.5,
    )


def test_a_start_is_split_at_the_worker_events_matched_by_task_id() -> None:
    row = _load().row("postgresql", "2 worker processes")

    parts = row["parts_ms"]
    assert round(parts["queue"]["p99"]) == 20
    assert round(parts["pool pipe"]["p99"]) == 5
    assert round(parts["start statement"]["p99"]) == 6
    assert parts["queue"]["n"] == 1  # the message no worker received is not counted
    assert [round(ms) for ms in (row["sent_ms"]["p50"], row["sent_ms"]["max"])] == [20, 20]
    assert row["slots_sent"] == 2
    assert round(row["started_ms"]["p99"]) == 41


def test_percentiles_of_nothing_are_not_numbers() -> None:
    empty = percentiles([])

    assert empty["n"] == 0
    assert empty["p99"] != empty["p99"]  # NaN
    assert percentiles([float(v) for v in range(1, 101)])["p99"] == 100.0


def test_targets_give_send_and_start_lateness_with_workers_and_send_only_without() -> None:
    results = Results("quick", {}, "now")
    results.add("lateness", **_load().row("postgresql", "2 worker processes"))
    alone = _load().row("sqlite", "none (beat alone)")
    results.add("lateness", **{**alone, "slots_started": 0, "started_ms": percentiles([])})

    found = {t["target"]: t["status"] for t in targets(results)}

    workers = "10 due/s (postgresql, workers: 2 worker processes)"
    assert found[f"p99 send lateness, ms, {workers}"] == "met"
    assert found[f"p99 start lateness, ms, {workers}"] == "met"
    beat_alone = "10 due/s (sqlite, workers: none (beat alone))"
    assert found[f"p99 send lateness, ms, {beat_alone}"] == "met"
    assert f"p99 start lateness, ms, {beat_alone}" not in found


def test_the_task_events_target_is_events_on_over_off() -> None:
    results = Results("quick", {}, "now")
    results.add("dispatch", sender="drumline beat", store="sqlite", rate=700.0)
    results.add(
        "dispatch", sender="drumline beat, task-sent events off", store="sqlite", rate=1000.0
    )

    found = {t["target"]: t for t in targets(results)}

    target = found["dispatch, task-sent events on / off (sqlite)"]
    assert target["value"] == 0.7
    assert target["status"] == "missed"

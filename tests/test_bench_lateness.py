"""The lateness bench's arithmetic: how it splits a start and which targets it reports."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bench.lateness import LoadWindow, SearchPlan, Shape, _kept_up, _search, percentiles
from bench.report import Results, lateness_search_table, targets
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


def _window(
    per_s: float, interval_s: float, window_s: float, started: int, first: float, last: float
) -> LoadWindow:
    """A stand-in rig's load: `started` of its slots in time, the queue's median `first` in
    the window's first third and `last` in its last."""
    return LoadWindow(
        per_s=per_s,
        producers=round(per_s * interval_s),
        interval_s=interval_s,
        window_s=window_s,
        expected=round(per_s * window_s),
        messages={},
        runs=[],
        started_in_time=started,
        backlog_start=first,
        backlog_end=last,
        cpu_cores={},
        cpu_pressure=None,
    )


class _CarriesLessOverLongWindows:
    """Stand-in for the rig: keeps up below `capacity[window_s]` due/s, as a system near its
    limit does for 10 s but not for 30 s."""

    store = "postgresql"

    def __init__(self, capacity: dict[float, float]) -> None:
        self.capacity = capacity
        self.loads: list[tuple[float, float, float]] = []

    def load(self, per_s: float, interval_s: float, window_s: float) -> LoadWindow:
        self.loads.append((per_s, interval_s, window_s))
        expected = round(per_s * window_s)
        ok = per_s < self.capacity[window_s]
        started = expected if ok else expected // 2
        return _window(per_s, interval_s, window_s, started, 0, 0 if ok else per_s)


def test_the_search_judges_its_answer_over_the_measured_window_and_narrows_the_gap() -> None:
    rig = _CarriesLessOverLongWindows({10.0: 100.0, 30.0: 70.0})
    results = Results("quick", {}, "now")

    kept_up = _search(rig, results, SearchPlan(), Shape(interval_s=10.0, window_s=30.0))

    # Short steps: 25, 37.5, 56.25, 84.375 keep up, 126.6 does not. Over 30 s 84.375 falls
    # behind and 56.25 keeps up; the gap is then halved twice: 68.9 keeps up, 76.2 does not.
    assert 68 < kept_up < 70
    assert [round(per_s, 1) for per_s, _, _ in rig.loads] == [
        25.0, 37.5, 56.2, 84.4, 126.6, 84.4, 56.2, 68.9, 76.2
    ]  # fmt: skip
    assert all((interval, window) == (10.0, 30.0) for _, interval, window in rig.loads[5:])
    rows = results.rows("lateness_search")
    assert [r["stage"] for r in rows[4:]] == ["x1.5 step", "confirm", "confirm", "refine", "refine"]
    assert [r["kept_up"] for r in rows[5:]] == [False, True, True, False]
    table = lateness_search_table(results)
    assert "| postgresql | x1.5 step | 126.6 | 5 / 10 | 633/1266 |" in table
    assert "| postgresql | confirm | 84.4 | 10 / 30 | 1265/2531 |" in table


def test_a_search_where_nothing_keeps_up_over_the_long_window_says_zero() -> None:
    rig = _CarriesLessOverLongWindows({10.0: 60.0, 30.0: 10.0})

    kept_up = _search(rig, Results("quick", {}, "now"), SearchPlan(), Shape(10.0, 30.0))

    assert kept_up == 0.0
    # 56.25 kept up in 10 s; over 30 s it and the next two rates down (37.5, 25) fell behind.
    assert [round(per_s, 1) for per_s, _, w in rig.loads if w == 30.0] == [56.2, 37.5, 25.0]


class _StandingBacklog:
    """Stand-in for the rig: every slot starts by the window's end, but behind a queue that
    shrinks from `first` to `last` (as seen at 171.5 due/s: 166.5 -> 95.5)."""

    store = "postgresql"

    def __init__(self, first: float, last: float) -> None:
        self.first, self.last = first, last

    def load(self, per_s: float, interval_s: float, window_s: float) -> LoadWindow:
        started = round(per_s * window_s)
        return _window(per_s, interval_s, window_s, started, self.first, self.last)


def test_a_standing_backlog_that_shrinks_a_little_is_behind_not_keeping_up() -> None:
    results = Results("quick", {}, "now")
    shape = Shape(interval_s=10.0, window_s=30.0)

    behind = _kept_up(_StandingBacklog(166.5, 95.5), results, SearchPlan(), 171.5, shape, "refine")
    short = _kept_up(_StandingBacklog(2.5, 1.0), results, SearchPlan(), 155.0, shape, "refine")

    assert (behind, short) == (False, True)
    assert [row["kept_up"] for row in results.rows("lateness_search")] == [False, True]


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

"""Results: collected rows, the markdown tables, the targets and the JSON file."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Row = dict[str, Any]


@dataclass
class Results:
    mode: str
    machine: dict[str, Any]
    started_at: str
    sections: dict[str, list[Row]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def add(self, section: str, **row: Any) -> None:
        self.sections.setdefault(section, []).append(row)

    def rows(self, section: str) -> list[Row]:
        return self.sections.get(section, [])

    def find(self, section: str, **match: Any) -> Row | None:
        for row in self.rows(section):
            if all(row.get(key) == value for key, value in match.items()):
                return row
        return None

    def write_json(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "mode": self.mode,
            "machine": self.machine,
            "started_at": self.started_at,
            "sections": self.sections,
            "targets": targets(self),
            "notes": self.notes,
        }
        path.write_text(json.dumps(payload, indent=2, default=str) + "\n")


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        if math.isnan(value):
            return "n/a"
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(_fmt(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def tick_table(results: Results) -> str:
    rows = [
        [
            r["system"],
            r["store"],
            r["n"],
            r.get("send_due_ms"),
            r.get("idle_tick_ms"),
            r.get("load_ms"),
            r.get("rss_mib"),
            r.get("note", ""),
        ]
        for r in results.rows("tick")
    ]
    headers = [
        "system",
        "store",
        "N",
        "claim+send D=100, ms (median)",
        "idle tick, ms",
        "load, ms",
        "beat peak RSS, MiB",
        "note",
    ]
    return _table(headers, rows)


def dispatch_table(results: Results) -> str:
    rows = [
        [r["sender"], r["store"], r["sent"], r["seconds"], r["rate"], r.get("note", "")]
        for r in results.rows("dispatch")
    ]
    return _table(["sender", "store", "sent", "seconds", "messages/s", "note"], rows)


def e2e_table(results: Results) -> str:
    rows = [
        [r["system"], r["store"], r["tasks"], r["seconds"], r["rate"], r.get("note", "")]
        for r in results.rows("end_to_end")
    ]
    return _table(["system", "store", "tasks", "seconds", "tasks/s", "note"], rows)


def lateness_table(results: Results) -> str:
    rows = []
    for r in results.rows("lateness"):
        sent, started = r["sent_ms"], r["started_ms"]
        rows.append(
            [
                r["store"],
                r["workers"],
                r["producers"],
                r["due_per_s"],
                r["seconds"],
                f"{r['slots_sent']}/{r['slots_expected']}",
                f"{r['slots_started']}/{r['slots_expected']}",
                sent["p50"],
                sent["p99"],
                sent["max"],
                started["p50"],
                started["p99"],
                started["max"],
                _parts(r.get("parts_ms")),
                ", ".join(f"{k} {v:.2f}" for k, v in r.get("cpu_cores", {}).items()),
                _percent(r.get("cpu_pressure")),
            ]
        )
    headers = [
        "store",
        "workers",
        "producers",
        "due/s",
        "window, s",
        "slots sent",
        "slots started",
        "sent p50, ms",
        "sent p99",
        "sent max",
        "started p50, ms",
        "started p99",
        "started max",
        "p99 of: queue / pool pipe / start statement, ms",
        "CPU cores busy in the window",
        "CPU pressure (some)",
    ]
    return _table(headers, rows)


def _parts(parts: dict[str, dict[str, float]] | None) -> str:
    if not parts or not any(part["n"] for part in parts.values()):
        return ""
    return " / ".join(_fmt(part["p99"]) for part in parts.values())


def _percent(share: float | None) -> str:
    return "n/a" if share is None else f"{share:.0%}"


def lateness_search_table(results: Results) -> str:
    rows = [
        [
            r["store"],
            r.get("stage", ""),
            r["due_per_s"],
            _shape(r),
            f"{r['started_in_time']}/{r['slots_expected']}",
            f"{r['backlog_start']:g} -> {r['backlog_end']:g}",
            r["started_ms"]["p50"],
            r["started_ms"]["p99"],
            ", ".join(f"{k} {v:.2f}" for k, v in r.get("cpu_cores", {}).items()),
            _percent(r.get("cpu_pressure")),
            "kept up" if r["kept_up"] else "fell behind",
        ]
        for r in results.rows("lateness_search")
    ]
    headers = [
        "store",
        "stage",
        "due/s",
        "producers every / window, s",
        "started by the window's end + 1 s",
        "median queue length, first -> last third of the window",
        "started p50, ms",
        "started p99, ms",
        "CPU cores busy in the window",
        "CPU pressure (some)",
        "2 worker processes",
    ]
    return _table(headers, rows)


def _shape(row: dict[str, Any]) -> str:
    if "window_s" not in row:  # results written before the search judged long windows
        return ""
    return f"{row['interval_s']:g} / {row['window_s']:g}"


def burst_table(results: Results) -> str:
    rows = []
    for r in results.rows("burst"):
        sent = r["sent_ms"]
        rows.append(
            [
                r["system"],
                r["store"],
                r["due"],
                r["beats"],
                r["workers"],
                r["sent"],
                r["drain_s"],
                r["rate"],
                sent["p50"],
                sent["p99"],
                r.get("last_started_s"),
                r.get("note", ""),
            ]
        )
    headers = [
        "system",
        "store",
        "due at once",
        "beats",
        "worker processes",
        "sent",
        "last sent after, s",
        "sent/s",
        "sent p50, ms",
        "sent p99, ms",
        "last started after, s",
        "note",
    ]
    return _table(headers, rows)


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or not b or math.isnan(a) or math.isnan(b):
        return None
    return a / b


def targets(results: Results) -> list[Row]:
    """The issue's targets as measured ratios; reported, never asserted."""
    out: list[Row] = []
    for store in ("sqlite", "postgresql"):
        ticks = [
            r for r in results.rows("tick") if r["system"] == "drumline" and r["store"] == store
        ]
        if len(ticks) >= 2:
            small, large = ticks[0], ticks[-1]
            ratio = _ratio(large.get("send_due_ms"), small.get("send_due_ms"))
            out.append(
                _target(
                    f"tick N={large['n']:,} / N={small['n']:,} ({store})", ratio, 1.5, below=True
                )
            )
            rss = _ratio(large.get("rss_mib"), small.get("rss_mib"))
            out.append(
                _target(
                    f"beat RSS N={large['n']:,} / N={small['n']:,} ({store})", rss, 1.1, below=True
                )
            )
    redbeat = results.find("dispatch", sender="RedBeat")
    raw = results.find("dispatch", sender="raw send_task")
    for store in ("sqlite", "postgresql"):
        ours = results.find("dispatch", sender="drumline beat", store=store)
        if ours is None:
            continue
        out.append(
            _target(
                f"dispatch / RedBeat ({store})",
                _ratio(ours["rate"], redbeat["rate"] if redbeat else None),
                5.0,
            )
        )
        out.append(
            _target(
                f"dispatch / raw send_task ({store})",
                _ratio(ours["rate"], raw["rate"] if raw else None),
                2.0,
            )
        )
    for store in ("sqlite", "postgresql"):
        on = results.find("dispatch", sender="drumline beat", store=store)
        off = results.find("dispatch", sender="drumline beat, task-sent events off", store=store)
        if on is not None and off is not None:
            out.append(
                _target(
                    f"dispatch, task-sent events on / off ({store})",
                    _ratio(on["rate"], off["rate"]),
                    0.75,
                )
            )
    # Like for like: each sender with and without a task-sent event per message.
    raw_events = results.find("dispatch", sender="raw send_task, drumline's Celery settings")
    for store in ("sqlite", "postgresql"):
        pairs = (
            ("drumline beat", raw_events, "raw send_task, both with task-sent events"),
            ("drumline beat, task-sent events off", raw, "raw send_task, both without events"),
        )
        for sender, base, name in pairs:
            ours = results.find("dispatch", sender=sender, store=store)
            if ours is not None and base is not None:
                out.append(
                    _context(
                        f"{sender} / {name} ({store})", _ratio(ours["rate"], base["rate"]), 2.0
                    )
                )
    out += _end_to_end_targets(results)
    out += _burst_targets(results)
    for row in results.rows("lateness"):
        load = f"{row['due_per_s']:.0f} due/s ({row['store']}, workers: {row['workers']})"
        out.append(
            _target(f"p99 send lateness, ms, {load}", row["sent_ms"]["p99"], 50.0, below=True)
        )
        if row["slots_started"]:
            out.append(
                _target(
                    f"p99 start lateness, ms, {load}", row["started_ms"]["p99"], 100.0, below=True
                )
            )
    return out


def _end_to_end_targets(results: Results) -> list[Row]:
    out: list[Row] = []
    defaults = results.find("end_to_end", system="raw Celery no-op")
    like_ours = results.find("end_to_end", system="raw Celery no-op, drumline's settings")
    like_ours_off = results.find(
        "end_to_end", system="raw Celery no-op, drumline's settings, events off"
    )

    def rate(row: Row | None) -> float | None:
        return None if row is None else row["rate"]

    def worker_cpu(row: Row | None) -> float | None:
        return None if row is None else row.get("cpu_ms", {}).get("worker")

    for store in ("postgresql", "sqlite"):
        ours = results.find("end_to_end", system="drumline demo.noop", store=store)
        off = results.find(
            "end_to_end", system="drumline demo.noop, DRUMLINE_TASK_EVENTS=off", store=store
        )
        if ours is None:
            continue
        out.append(
            _target(
                f"worker CPU per run / raw no-op with the same settings ({store})",
                _ratio(worker_cpu(ours), worker_cpu(like_ours)),
                1.3,
                below=True,
            )
        )
        out.append(
            _target(
                f"end-to-end / raw Celery with the same settings ({store})",
                _ratio(rate(ours), rate(like_ours)),
                0.8,
            )
        )
        out.append(
            _target(
                f"end-to-end, task events off / raw Celery's defaults ({store})",
                _ratio(rate(off), rate(defaults)),
                0.6,
            )
        )
        out.append(
            _context(
                f"end-to-end / raw Celery's defaults, both with events as configured ({store})",
                _ratio(rate(ours), rate(defaults)),
                0.6,
            )
        )
        out.append(
            _context(
                f"end-to-end, task events off / raw Celery with the same settings ({store})",
                _ratio(rate(off), rate(like_ours_off)),
                0.8,
            )
        )
    return out


def _burst_targets(results: Results) -> list[Row]:
    out: list[Row] = []
    redbeat = results.find("burst", system="RedBeat")
    for store in ("sqlite", "postgresql"):
        one = results.find("burst", system="drumline", store=store, beats=1, workers=0)
        two = results.find("burst", system="drumline", store=store, beats=2, workers=0)
        if one is None:
            continue
        out.append(
            _target(
                f"burst of {one['due']:,}: drain time, 1 beat / RedBeat ({store})",
                _ratio(one["drain_s"], redbeat["drain_s"] if redbeat else None),
                0.1,
                below=True,
            )
        )
        if two is not None:
            gain = _ratio(two["rate"], one["rate"])
            out.append(
                _target(
                    f"burst of {one['due']:,}: rate a second beat adds / 1 beat's ({store})",
                    None if gain is None else gain - 1,
                    0.6,
                )
            )
    return out


def _target(name: str, value: float | None, goal: float, *, below: bool = False) -> Row:
    if value is None:
        status = "n/a"
    elif below:
        status = "met" if value <= goal else "missed"
    else:
        status = "met" if value >= goal else "missed"
    return {
        "target": name,
        "value": value,
        "goal": ("≤ " if below else "≥ ") + f"{goal:g}",
        "status": status,
    }


def _context(name: str, value: float | None, goal: float) -> Row:
    """A ratio shown beside the targets for comparison, not itself a target."""
    return {**_target(f"(context) {name}", value, goal), "status": "context"}


def targets_table(results: Results) -> str:
    rows = [[t["target"], t["value"], t["goal"], t["status"]] for t in targets(results)]
    return _table(
        ["target", "measured", "goal", "status"], [[*r[:1], _two(r[1]), *r[2:]] for r in rows]
    )


def _two(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def markdown(results: Results) -> str:
    m = results.machine
    parts = [
        f"## drumline benchmarks ({results.mode}, {results.started_at})",
        f"Machine: {m['nproc']} cores, {m['cpu']}, Python {m['python']}; "
        f"1-minute load average {m.get('loadavg_start', 0):.1f} at start, "
        f"{m.get('loadavg_end', 0):.1f} at end; {m.get('seconds', 0)} s in all",
    ]
    sections = [
        ("1. Tick cost against N (D = 100 due)", "tick", tick_table),
        ("2. Dispatch rate (D = 10,000 due at once)", "dispatch", dispatch_table),
        ("3. End to end (2 prefork worker processes)", "end_to_end", e2e_table),
        (
            "4a. Lateness: the highest due/s 2 worker processes keep up with",
            "lateness_search",
            lateness_search_table,
        ),
        ("4b. Lateness", "lateness", lateness_table),
        ("5. Burst (N due at the same instant)", "burst", burst_table),
    ]
    for title, key, render in sections:
        if results.rows(key):
            parts += [f"### {title}", render(results)]
    if targets(results):
        parts += ["### Targets (reported, not asserted)", targets_table(results)]
    if results.notes:
        parts += ["### Notes", "\n".join(f"- {note}" for note in results.notes)]
    return "\n\n".join(parts) + "\n"

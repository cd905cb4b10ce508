"""`python -m bench --quick | --full`: run every benchmark, print markdown, write JSON."""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import TypedDict

from bench import burst, dispatch, end_to_end, lateness, tick
from bench.infra import STORES, infrastructure, machine, step
from bench.procs import stop_all
from bench.report import Results, markdown

RESULTS_DIR = Path(__file__).resolve().parent / "results"
STEPS = ("tick", "dispatch", "e2e", "lateness", "burst")


class Plans(TypedDict):
    tick: tick.TickPlan
    dispatch: dispatch.DispatchPlan
    e2e: end_to_end.EndToEndPlan
    lateness: lateness.LatenessPlan
    burst: burst.BurstPlan


def _plans(full: bool, stores: tuple[str, ...]) -> Plans:
    if full:
        return {
            "tick": tick.TickPlan(
                sizes=[1_000, 10_000, 100_000, 1_000_000],
                django_sizes=[1_000, 10_000, 100_000],
                budget_s=120.0,
                rss_timeout_s=90.0,
            ),
            "dispatch": dispatch.DispatchPlan(
                due=10_000, repeats=3, peer_window_s=30.0, extra_repeats=3
            ),
            "e2e": end_to_end.EndToEndPlan(tasks=10_000, timeout_s=600.0),
            "lateness": lateness.LatenessPlan(seconds=60.0, stores=STORES),
            "burst": burst.BurstPlan(due=100_000, stores=stores, worker_due=10_000),
        }
    return {
        "tick": tick.TickPlan(
            sizes=[1_000, 10_000, 100_000], django_sizes=[1_000, 10_000], budget_s=30.0
        ),
        "dispatch": dispatch.DispatchPlan(due=10_000, repeats=3, peer_window_s=10.0),
        "e2e": end_to_end.EndToEndPlan(tasks=2_000),
        "lateness": lateness.LatenessPlan(seconds=30.0, stores=("postgresql",)),
        "burst": burst.BurstPlan(due=10_000, stores=stores, worker_due=5_000),
    }


def _on_sigterm(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="N up to 100k, 30 s lateness, 10k burst")
    mode.add_argument("--full", action="store_true", help="N up to 1M, 60 s lateness, 100k burst")
    parser.add_argument("--only", default=",".join(STEPS), help=f"comma list of {STEPS}")
    parser.add_argument("--stores", default=",".join(STORES), help="drumline stores to run")
    parser.add_argument("--keep-workdir", action="store_true", help="keep logs and data")
    args = parser.parse_args(argv)
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    stores = tuple(s.strip() for s in args.stores.split(",") if s.strip())
    if unknown := set(only) - set(STEPS):
        parser.error(f"unknown steps: {sorted(unknown)}")

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    signal.signal(signal.SIGTERM, _on_sigterm)
    plans = _plans(args.full, stores)
    label = "full" if args.full else "quick"
    started = datetime.now(UTC)
    results = Results(label, machine(), started.strftime("%Y-%m-%d %H:%M UTC"))
    results.machine["loadavg_start"] = os.getloadavg()[0]
    workdir = Path(tempfile.mkdtemp(prefix="drumline-bench-"))
    step(f"bench --{label}: steps {', '.join(only)}; work directory {workdir}")
    began = time.monotonic()
    failed = []
    try:
        with infrastructure(workdir) as infra:
            sections: dict[str, Callable[[], None]] = {
                "tick": lambda: tick.run(infra, results, plans["tick"], stores),
                "dispatch": lambda: dispatch.run(infra, results, plans["dispatch"], stores),
                "e2e": lambda: end_to_end.run(infra, results, plans["e2e"], stores),
                "lateness": lambda: lateness.run(infra, results, plans["lateness"]),
                "burst": lambda: burst.run(infra, results, plans["burst"]),
            }
            for name in only:
                try:
                    sections[name]()
                except Exception as exc:  # report it, run the other sections
                    traceback.print_exc()
                    step(f"{name} failed: {type(exc).__name__}: {exc}")
                    results.notes.append(f"{name} failed: {type(exc).__name__}: {exc}")
                    failed.append(name)
                finally:
                    stop_all()
    finally:
        stop_all()
        if not args.keep_workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    results.machine["loadavg_end"] = os.getloadavg()[0]
    results.machine["seconds"] = round(time.monotonic() - began)
    step(f"done in {time.monotonic() - began:.0f}s")
    output = RESULTS_DIR / f"{label}-{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    results.write_json(output)
    results.write_json(RESULTS_DIR / f"{label}-latest.json")
    print(markdown(results))
    step(f"results written to {output}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

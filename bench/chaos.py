"""`python -m bench.chaos [--quick | --full] [--only NAME,...]`: the fault matrix on seven hosts
in network namespaces (the CI test's scenarios, `tests/hosts/scenarios.py`), one markdown table.

`--full` runs each scenario long enough for at least 1,000 due slots; `--quick` uses the CI
test's load. Needs root (namespaces); everything it creates is removed at the end, also on
Ctrl-C or SIGTERM. Exit code 1 if any scenario had a duplicate, a lost slot or a stuck row.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from types import FrameType

from tests.hosts.cluster import running_cluster
from tests.hosts.network import why_unavailable
from tests.hosts.scenarios import SCENARIOS, Load, Outcome, run_scenario

QUICK = Load(producers=30, fault_at_s=3, after_heal_s=12, outage_s=5)
FULL = Load(producers=60, fault_at_s=5, after_heal_s=30, outage_s=10)
COLUMNS = (
    "slots due",
    "committed",
    "duplicates",
    "lost",
    "superseded",
    "re-runs",
    "fenced re-runs",
    "overwritten",
    "coalesced",
    "recovery s",
    "max late after s",
)


def table(outcomes: list[Outcome]) -> str:
    lines = [
        "| scenario | fault | " + " | ".join(COLUMNS) + " | stuck | restarts |",
        "|---|---|" + "---:|" * len(COLUMNS) + "---:|---|",
    ]
    for outcome in outcomes:
        row = outcome.ledger.row()
        cells = " | ".join(str(row[column]) for column in COLUMNS)
        restarts = ", ".join(outcome.restarted)
        lines.append(
            f"| {outcome.scenario} | {outcome.fault.what} | {cells} "
            f"| {len(outcome.stuck)} | {restarts} |"
        )
    return "\n".join(lines)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # unwinds through every cleanup


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.chaos")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="the CI test's load (default)")
    mode.add_argument("--full", action="store_true", help="at least 1,000 slots per scenario")
    parser.add_argument("--only", default="", help="comma-separated scenarios")
    args = parser.parse_args(argv)
    chosen = [name.strip() for name in args.only.split(",") if name.strip()] or list(SCENARIOS)
    unknown = [name for name in chosen if name not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario {unknown}; choose from {list(SCENARIOS)}")
    reason = why_unavailable()
    if reason is not None:
        print(f"cannot run: {reason}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _interrupt)
    load = FULL if args.full else QUICK
    outcomes: list[Outcome] = []
    failed: list[str] = []
    began = time.monotonic()
    with running_cluster() as cluster:
        for name in chosen:
            print(f"{name}...", file=sys.stderr, flush=True)
            try:
                outcomes.append(run_scenario(cluster, name, load))
            except Exception as error:  # one scenario failing must not hide the others' rows
                failed.append(f"{name}: {type(error).__name__}: {str(error)[:300]}")
                continue
            print(table(outcomes[-1:]).splitlines()[-1], file=sys.stderr, flush=True)
    print(f"{'full' if args.full else 'quick'}: {load}; {time.monotonic() - began:.0f} s")
    print(table(outcomes))
    for line in failed:
        print(f"\nscenario failed: {line}")
    bad = [o for o in outcomes if o.ledger.duplicates or o.ledger.lost or o.stuck]
    for outcome in bad:
        print(
            f"{outcome.scenario}: duplicates {outcome.ledger.duplicates[:5]}, "
            f"lost {outcome.ledger.lost[:5]}, stuck {outcome.stuck}",
            file=sys.stderr,
        )
    return 1 if bad or failed else 0


if __name__ == "__main__":
    sys.exit(main())

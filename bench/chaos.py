"""`python -m bench.chaos [--quick | --full] [--only NAME,...]`: the fault matrix on seven hosts
in network namespaces (the CI test's scenarios, `tests/hosts/scenarios.py`), one markdown table.

`--full` runs each scenario long enough for at least 1,000 due slots; `--quick` uses the CI
test's load. The Redis failover scenario runs on a second cluster, with a replica and three
sentinels. Needs root (namespaces); everything it creates is removed at the end, also on
Ctrl-C or SIGTERM. Exit code 1 if any scenario had a duplicate, a lost slot or a stuck row.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from types import FrameType

from tests.hosts.cluster import Cluster, running_cluster
from tests.hosts.lock_fence import lock_holder_partitioned
from tests.hosts.network import why_unavailable
from tests.hosts.scenarios import FAILOVER_SCENARIOS, SCENARIOS, Load, Outcome, run_scenario

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
    "still due",
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


def lock_note(cluster: Cluster) -> str:
    """The lock-holder partition, in one line."""
    try:
        outcome = lock_holder_partitioned(cluster)
    except Exception as error:
        return f"lock holder partitioned: failed: {type(error).__name__}: {str(error)[:300]}"
    return (
        f"lock holder partitioned past the lock's expiry mid-deploy ({outcome.holder}), a second "
        f"deploy went through: the stale deploy ended {outcome.stale_error[:160]!r}; final "
        f"version {outcome.final_version}, producers {outcome.final_producers}"
    )


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # unwinds through every cleanup


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.chaos")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="the CI test's load (default)")
    mode.add_argument("--full", action="store_true", help="at least 1,000 slots per scenario")
    parser.add_argument("--only", default="", help="comma-separated scenarios")
    args = parser.parse_args(argv)
    every = [*SCENARIOS, *FAILOVER_SCENARIOS]
    chosen = [name.strip() for name in args.only.split(",") if name.strip()] or every
    unknown = [name for name in chosen if name not in every]
    if unknown:
        parser.error(f"unknown scenario {unknown}; choose from {every}")
    reason = why_unavailable()
    if reason is not None:
        print(f"cannot run: {reason}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _interrupt)
    load = FULL if args.full else QUICK
    outcomes: list[Outcome] = []
    failed: list[str] = []
    notes: list[str] = []
    began = time.monotonic()
    for sentinel, names in ((False, SCENARIOS), (True, FAILOVER_SCENARIOS)):
        mine = [name for name in chosen if name in names]
        if not mine:
            continue
        with running_cluster(sentinel=sentinel) as cluster:
            for name in mine:
                print(f"{name}...", file=sys.stderr, flush=True)
                try:
                    outcomes.append(run_scenario(cluster, name, load))
                except Exception as error:  # one failing must not hide the others' rows
                    failed.append(f"{name}: {type(error).__name__}: {str(error)[:300]}")
                    continue
                print(table(outcomes[-1:]).splitlines()[-1], file=sys.stderr, flush=True)
            if not sentinel and not args.only:
                notes.append(lock_note(cluster))
    print(f"{'full' if args.full else 'quick'}: {load}; {time.monotonic() - began:.0f} s")
    print(table(outcomes))
    for line in notes:
        print(f"\n{line}")
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

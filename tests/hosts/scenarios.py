"""The fault matrix: one workflow under load per scenario, one fault in the middle, then the
invariants (`invariants.py`). The CI test and `python -m bench.chaos` run the same scenarios;
only the load and the durations differ.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from models.schedule_store import ProducerScheduleStore
from models.slot_ledger_store import recent_outcomes
from models.types import utc_now
from models.workflow_store import WorkflowStore
from tests.e2e import deploy, journal_producer, lifecycle, runs_of, wait_until
from tests.e2e_producers import read_journal
from tests.hosts.cluster import LEASE_S, WORKERS, Cluster
from tests.hosts.invariants import Ledger, check, recovered
from tests.hosts.sentinel import wait_for_new_master
from tests.test_topology import group_pids, open_starts, queued, stuck_rows

RUN_SECONDS = 0.05
# A few producers run longer, so a fault can wait until a worker is inside a run.
HOLDS, HOLD_SECONDS = 3, 1.2
STUCK_RECHECK_S = 1.5
DRAIN_TIMEOUT_S = 60.0
# More ledger rows than any scenario writes (one per slot at most).
MAX_LEDGER_ROWS = 100_000
SUPERVISE_POLL_S = 0.2
# After `Load.after_heal_s`, the load goes on for up to this long until starts are on time
# again for SETTLED, so the lateness after recovery is measured on some runs.
RECOVERY_WAIT_S = 40.0
SETTLED = timedelta(seconds=3)
# How long a partition or a freeze lasts: past the lease, so the slot is sent again elsewhere.
PAST_LEASE_S = LEASE_S + 2


@dataclass(frozen=True)
class Load:
    producers: int
    fault_at_s: float
    after_heal_s: float  # how long the load goes on once the fault is over
    outage_s: float  # how long a restarted server stays down


@dataclass
class Fault:
    """What a fault did: the processes whose late commits must be fenced, and when it healed."""

    pids: set[int]
    healed: datetime
    what: str


FaultFn = Callable[[Cluster, Load, Path], Fault]


def every(n: int) -> timedelta:
    return timedelta(seconds=n % 3 + 1)


def producer_name(n: int) -> str:
    return f"p{n:03d}"


def supervised_sleep(cluster: Cluster, seconds: float) -> None:
    """Sleep, restarting any Celery process that exits meanwhile (compose's restart policy)."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        cluster.revive()
        time.sleep(min(SUPERVISE_POLL_S, left))


def worker_inside_run(cluster: Cluster, journal: Path) -> tuple[str, set[int]]:
    """Wait until a worker is inside a long run; its name and its process group's pids."""
    found: list[tuple[str, set[int]]] = []

    def inside() -> bool:
        for host in WORKERS:
            pids = group_pids(cluster.processes[host])
            if any(p.startswith("h") for p, _ in open_starts(journal, pids)):
                found.append((host, pids))
                return True
        return False

    wait_until(inside, 20, "a worker inside a long run")
    return found[0]


def partition_worker(cluster: Cluster, load: Load, journal: Path) -> Fault:
    host, pids = worker_inside_run(cluster, journal)
    cluster.network.isolate(host)
    supervised_sleep(cluster, PAST_LEASE_S)
    cluster.network.rejoin(host)
    return Fault(pids, utc_now(), f"{host} isolated for {PAST_LEASE_S:g}s inside a run")


def freeze_worker(cluster: Cluster, load: Load, journal: Path) -> Fault:
    host, pids = worker_inside_run(cluster, journal)
    cluster.freeze(host)
    supervised_sleep(cluster, PAST_LEASE_S)
    cluster.thaw(host)
    return Fault(pids, utc_now(), f"{host} SIGSTOPped for {PAST_LEASE_S:g}s inside a run")


def cut_beat(other: str | None) -> FaultFn:
    """beat1 cut off from `other` (None: from everything) for longer than the lease."""

    def fault(cluster: Cluster, load: Load, journal: Path) -> Fault:
        if other is None:
            cluster.network.isolate("beat1")
        else:
            cluster.network.cut("beat1", other)
        supervised_sleep(cluster, PAST_LEASE_S)
        if other is None:
            cluster.network.rejoin("beat1")
        else:
            cluster.network.uncut("beat1", other)
        return Fault(set(), utc_now(), f"beat1 cut from {other or 'every host'}")

    return fault


def cut_both_beats(cluster: Cluster, load: Load, journal: Path) -> Fault:
    """beat1 cut from Redis (it claims, its sends go nowhere) while beat2 is cut from the
    database (it cannot claim): the three beat faults of the matrix at once, for CI's time."""
    cluster.network.cut("beat1", "redis")
    cluster.network.cut("beat2", "postgres")
    supervised_sleep(cluster, PAST_LEASE_S)
    cluster.network.uncut("beat1", "redis")
    cluster.network.uncut("beat2", "postgres")
    return Fault(set(), utc_now(), "beat1 cut from redis and beat2 from postgres")


def restart_postgres(cluster: Cluster, load: Load, journal: Path) -> Fault:
    cluster.postgres.stop()
    supervised_sleep(cluster, load.outage_s)
    cluster.postgres.start()
    return Fault(set(), utc_now(), f"PostgreSQL down for {load.outage_s:g}s")


def restart_redis(cluster: Cluster, load: Load, journal: Path) -> Fault:
    cluster.redis.stop()
    supervised_sleep(cluster, load.outage_s)
    cluster.redis.start()
    return Fault(set(), utc_now(), f"Redis (AOF) down for {load.outage_s:g}s")


def kill_primary(cluster: Cluster, load: Load, journal: Path) -> Fault:
    """SIGKILL the Redis primary; the sentinels promote the replica (needs a sentinel cluster)."""
    assert cluster.replica is not None, "a failover needs running_cluster(sentinel=True)"
    old = cluster.redis.host
    assert cluster.redis.child is not None
    cluster.redis.child.kill()
    moved_to = wait_for_new_master(cluster.sentinels, old, FAILOVER_TIMEOUT_S)
    assert moved_to == cluster.replica.host
    return Fault(set(), utc_now(), f"Redis primary SIGKILLed, {moved_to} promoted")


SCENARIOS: dict[str, FaultFn] = {
    "worker partitioned": partition_worker,
    "worker frozen": freeze_worker,
    "beat partitioned": cut_beat(None),
    "beat cut from redis": cut_beat("redis"),
    "beat cut from db": cut_beat("postgres"),
    "beats cut": cut_both_beats,
    "postgres restarted": restart_postgres,
    "redis restarted": restart_redis,
}
# Scenarios that need Redis Sentinel (`running_cluster(sentinel=True)`).
FAILOVER_SCENARIOS: dict[str, FaultFn] = {"redis primary killed": kill_primary}
FAILOVER_TIMEOUT_S = 30.0


@dataclass
class Outcome:
    scenario: str
    fault: Fault
    ledger: Ledger
    stuck: dict[str, datetime]
    restarted: list[str]


def run_scenario(cluster: Cluster, scenario: str, load: Load) -> Outcome:
    """Deploy a fresh workflow, fault it mid-run, pause it at the end, and check it."""
    workflow = "chaos-" + scenario.replace(" ", "-")
    journal = cluster.scratch / f"{workflow}.jsonl"
    producers = {
        ("h" if n < HOLDS else "p") + producer_name(n)[1:]: journal_producer(
            journal,
            seconds=HOLD_SECONDS if n < HOLDS else RUN_SECONDS,
            interval=f"{every(n).seconds}s",
        )
        for n in range(load.producers)
    }
    steps = {name: every(n) for n, name in enumerate(producers)}
    restarts_before = sum(cluster.restarts.values())
    deploy(cluster.env, {"name": workflow, "producers": producers})
    began = time.monotonic()
    engine = cluster.engine()
    broker = cluster.broker()
    try:
        record = WorkflowStore(engine).get(workflow)
        assert record is not None
        schedules = ProducerScheduleStore(engine)
        first = {row.producer_name: row.next_run_at for row in schedules.list(record.id)}
        grid = {name: (at, steps[name]) for name, at in first.items() if at is not None}
        supervised_sleep(cluster, load.fault_at_s - (time.monotonic() - began))
        fault = {**SCENARIOS, **FAILOVER_SCENARIOS}[scenario](cluster, load, journal)
        supervised_sleep(cluster, load.after_heal_s - STUCK_RECHECK_S)
        # A loaded machine may take longer to recover: go on until runs are on time again.
        deadline = time.monotonic() + RECOVERY_WAIT_S
        while time.monotonic() < deadline and not recovered(
            runs_of(engine, workflow), fault.healed, SETTLED
        ):
            supervised_sleep(cluster, 1)
        suspects = stuck_rows(schedules.list(record.id), utc_now())
        supervised_sleep(cluster, STUCK_RECHECK_S)
        again = stuck_rows(schedules.list(record.id), utc_now())
        stuck = {p: at for p, at in again.items() if suspects.get(p) == at}
        stop = utc_now()
        final = {row.producer_name: row.next_run_at for row in schedules.list(record.id)}
        lifecycle(cluster.env, "drumline.pause_workflow", workflow)

        def drained() -> bool:
            cluster.revive()
            running = any(r.status == "running" for r in runs_of(engine, workflow))
            return queued(broker) == 0 and not running

        wait_until(drained, DRAIN_TIMEOUT_S, f"{workflow}'s runs to drain")
        ledger = check(
            runs_of(engine, workflow),
            read_journal(journal),
            grid,
            final,
            recent_outcomes(engine, record.id, None, limit=MAX_LEDGER_ROWS),
            stop=stop,
            healed=fault.healed,
            faulted_pids=fault.pids,
        )
    finally:
        broker.close()
        engine.dispose()
    restarted = sum(cluster.restarts.values()) - restarts_before
    return Outcome(scenario, fault, ledger, stuck, [f"{restarted} restarts"])

"""Redis Sentinel on the namespace hosts: a primary, a replica and three sentinels; every
drumline URL is `sentinel://`. The primary is SIGKILLed under load: the sentinels promote the
replica, and workers, beats and lifecycle locks follow it with the invariants intact."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e import deploy
from tests.hosts.cluster import Cluster, running_cluster
from tests.hosts.network import why_unavailable
from tests.hosts.scenarios import Load, run_scenario
from workers.services.locks import lock_key

LOAD = Load(producers=30, fault_at_s=3, after_heal_s=12, outage_s=0)  # recovery took 11 s
LATE_BOUND_S = 3.0


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    reason = why_unavailable()
    if reason is not None:
        pytest.skip(f"no multi-host harness here: {reason}")
    with running_cluster(sentinel=True) as running:
        yield running


def test_a_killed_primary_is_replaced_and_every_slot_still_has_one_outcome(
    cluster: Cluster, capsys: pytest.CaptureFixture[str]
) -> None:
    outcome = run_scenario(cluster, "redis primary killed", LOAD)
    ledger = outcome.ledger
    with capsys.disabled():
        print(f"\n  failover: {outcome.fault.what}; {ledger.row()}; {outcome.restarted}")
    assert ledger.duplicates == []
    assert ledger.lost == []
    assert outcome.stuck == {}
    assert ledger.slots_due >= 200
    assert ledger.committed + ledger.coalesced + ledger.still_due == ledger.slots_due
    assert ledger.max_late_after_recovery_s < LATE_BOUND_S, "late (nan: never on time again)"
    # Lifecycle changes take their lock on the new primary.
    assert cluster.replica is not None
    summary = deploy(
        cluster.env,
        {"name": "after-failover", "producers": {"a": {"run": "demo.noop", "interval": "1h"}}},
    )
    assert summary["version"] == 1
    broker = cluster.broker()
    try:
        assert broker.connection_pool.get_master_address()[0] == cluster.replica.host  # type: ignore[attr-defined]
        assert not broker.exists(lock_key("after-failover"))  # taken and released there
    finally:
        broker.close()

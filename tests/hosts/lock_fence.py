"""The lock-holder partition: a deploy holds its workflow's Redis lock, its host is cut off
past the lock's expiry, a second deploy goes through meanwhile; when the first host comes back,
the version fence refuses its stale change and the rows are exactly the second definition.

The first deploy is held inside its critical section by a table lock the test takes on
`workflows`: it has taken the Redis lock and waits to read the workflow's version. Which worker
took it is read from PostgreSQL (`pg_stat_activity.client_addr` is that host's address).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from celery.result import AsyncResult
from sqlalchemy import text

from models.schedule_store import ProducerScheduleStore
from models.workflow_store import WorkflowStore
from tests.e2e import deploy, wait_until
from tests.hosts.cluster import LOCK_TIMEOUT_S, WORKERS, Cluster
from tests.processes import client_app
from workers.services.locks import lock_key

WORKFLOW = "chaos-lock"
RESULT_TIMEOUT_S = 60.0


@dataclass
class LockOutcome:
    holder: str
    stale_error: str
    final_version: int
    final_producers: list[str]
    final_definition: dict[str, Any]
    second_definition: dict[str, Any]


def definition(producer: str) -> dict[str, Any]:
    return {"name": WORKFLOW, "producers": {producer: {"run": "demo.noop", "interval": "1h"}}}


def lock_holder_partitioned(cluster: Cluster) -> LockOutcome:
    deploy(cluster.env, definition("first"))
    engine = cluster.engine()
    broker = cluster.broker()
    app = client_app(cluster.env)
    addresses = {cluster.network.hosts[w].address: w for w in WORKERS}
    try:
        blocker = engine.connect()
        blocker.execute(text("LOCK TABLE workflows IN ACCESS EXCLUSIVE MODE"))
        stale = app.send_task("drumline.deploy_workflow", args=[definition("stale")])
        holder: list[str] = []

        def waiting_on_the_table() -> bool:
            with engine.connect() as conn:
                rows = conn.execute(
                    text(
                        "SELECT host(client_addr) FROM pg_stat_activity "
                        "WHERE wait_event_type = 'Lock' AND client_addr IS NOT NULL"
                    )
                ).all()
            holder[:] = [addresses[row[0]] for row in rows if row[0] in addresses]
            return bool(holder) and bool(broker.exists(lock_key(WORKFLOW)))

        wait_until(waiting_on_the_table, 30, "a deploy holding the lock, waiting on the table")
        cluster.network.isolate(holder[0])
        blocker.rollback()  # its read now runs, and its answer goes nowhere
        blocker.close()
        wait_until(
            lambda: not broker.exists(lock_key(WORKFLOW)),
            LOCK_TIMEOUT_S + 5,
            "the partitioned holder's lock to expire",
        )
        second = definition("second")
        summary = deploy(cluster.env, second)
        assert summary["version"] == 2, summary
        time.sleep(1)
        cluster.network.rejoin(holder[0])
        result = AsyncResult(stale.id, app=app)
        result.get(timeout=RESULT_TIMEOUT_S, propagate=False)
        record = WorkflowStore(engine).get(WORKFLOW)
        assert record is not None
        producers = [row.producer_name for row in ProducerScheduleStore(engine).list(record.id)]
        return LockOutcome(
            holder=holder[0],
            stale_error=f"{result.state}: {result.result}",
            final_version=record.version,
            final_producers=sorted(producers),
            final_definition=dict(record.definition),
            second_definition=second,
        )
    finally:
        app.close()
        broker.close()
        engine.dispose()

"""`python -m bench.idle_tick`: what an idle tick costs while many slots are claimed (in flight).

A claimed row keeps its `next_run_at` until its run commits, so it stays in the partial index
`ix_producer_schedules_due`; beat's claim and `next_wakeup` walk that index in `next_run_at`
order and pass over every claimed row before they reach an unclaimed one. This times both
statements, in-process, after claiming C of N due rows (2,000 a claim, as beat does), against
the same statements over a prototype partial index that leaves claimed rows out (created here,
in the scratch database only). It measures; it asserts nothing.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, Index, Integer, bindparam, func, select

from bench.infra import analyze, infrastructure, step
from bench.seed import ScheduleSeeder
from models.claims import BeatClaims
from models.db import make_engine
from models.tables import can_be_due, producer_schedules
from models.types import UTCDateTime, utc_now

BATCH = 2_000
SAMPLES = 7
LEASE = timedelta(minutes=5)
_s = producer_schedules.c
_NOW = bindparam("now", type_=UTCDateTime())
_LIMIT = bindparam("limit", type_=Integer())
# The claim's search as `models.claims` words it (its UPDATE aside): due, and no live claim.
CLAIM_SEARCH = (
    select(_s.id)
    .where(
        can_be_due, _s.next_run_at <= _NOW, _s.claimed_until.is_(None) | (_s.claimed_until <= _NOW)
    )
    .order_by(_s.next_run_at)
    .limit(_LIMIT)
)
# The prototype: a partial index that holds only unclaimed rows. The claim's search and the
# next wakeup then pass over no claimed row: unclaimed rows come from the prototype index, rows
# whose lease ran out from ix_producer_schedules_claimed (its `claimed_until` order).
_UNCLAIMED_DUE = can_be_due & _s.claimed_until.is_(None)
PROTOTYPE_INDEX = Index(
    "ix_proto_unclaimed_due",
    _s.next_run_at,
    postgresql_where=_UNCLAIMED_DUE,
    sqlite_where=_UNCLAIMED_DUE,
)
PROTO_CLAIM_SEARCH = (
    select(_s.id)
    .where(_UNCLAIMED_DUE, _s.next_run_at <= _NOW)
    .order_by(_s.next_run_at)
    .limit(_LIMIT)
)
PROTO_EXPIRED_SEARCH = (
    select(_s.id)
    .where(can_be_due, _s.claimed_until <= _NOW)
    .order_by(_s.claimed_until)
    .limit(_LIMIT)
)
PROTO_NEXT_WAKEUP = select(
    select(func.min(_s.next_run_at)).where(_UNCLAIMED_DUE).scalar_subquery(),
    select(func.min(_s.claimed_until)).where(_s.claimed_until.is_not(None)).scalar_subquery(),
)


def _median_ms(call: Callable[[], Any]) -> float:
    times = []
    for _ in range(SAMPLES):
        began = time.perf_counter()
        call()
        times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times)


def _measure(engine: Engine, claimed_counts: list[int], due: int) -> list[dict[str, Any]]:
    claims = BeatClaims(engine)
    seeder = ScheduleSeeder(engine)
    now = utc_now()
    seeder.add(due, lambda i: now - timedelta(minutes=1) + timedelta(microseconds=i))
    analyze(engine)
    claimed, rows = 0, []
    for target in claimed_counts:
        while claimed < target:
            took = claims.claim_due(now=utc_now(), lease=LEASE, limit=min(BATCH, target - claimed))
            claimed += len(took)
        analyze(engine)

        def timed_query(statement: Any) -> Callable[[], None]:
            def call() -> None:
                with engine.connect() as conn:
                    conn.execute(statement, {"now": utc_now(), "limit": BATCH}).all()

            return call

        row = {
            "claimed": claimed,
            "claim search": _median_ms(timed_query(CLAIM_SEARCH)),
            "next_wakeup": _median_ms(lambda: claims.next_wakeup(now=utc_now())),
        }
        PROTOTYPE_INDEX.create(engine)
        analyze(engine)
        row |= {
            "proto claim search (unclaimed + expired)": _median_ms(timed_query(PROTO_CLAIM_SEARCH))
            + _median_ms(timed_query(PROTO_EXPIRED_SEARCH)),
            "proto next_wakeup": _median_ms(timed_query(PROTO_NEXT_WAKEUP)),
        }
        PROTOTYPE_INDEX.drop(engine)
        rows.append(row)
        step(f"idle tick: {engine.dialect.name}: {row}")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.idle_tick", description=__doc__)
    parser.add_argument("--due", type=int, default=100_000)
    parser.add_argument("--stores", default="sqlite,postgresql")
    args = parser.parse_args(argv)
    counts = sorted({0, 2_000, args.due // 10, args.due})
    with (
        tempfile.TemporaryDirectory(prefix="drumline-idle-tick-") as tmp,
        infrastructure(Path(tmp)) as infra,
    ):
        for store in args.stores.split(","):
            with infra.database(store) as url:
                engine = make_engine(url)
                rows = _measure(engine, counts, args.due)
                engine.dispose()
            print(f"\n{store}, {args.due:,} due, median of {SAMPLES}, ms")
            keys = list(rows[0])
            print("| " + " | ".join(keys) + " |\n|" + "---|" * len(keys))
            for row in rows:
                print(
                    "| "
                    + " | ".join(
                        f"{row[k]:,}" if k == "claimed" else f"{row[k]:,.1f}" for k in keys
                    )
                    + " |"
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

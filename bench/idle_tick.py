"""`python -m bench.idle_tick`: what an idle tick costs while many slots are claimed (in flight).

A claimed row keeps its `next_run_at` until its run commits. The due index
(`ix_producer_schedules_unclaimed_due`) leaves claimed rows out, and rows whose lease ran out are
found through `ix_producer_schedules_claimed`, so beat's claim and `next_wakeup` should cost the
same whether 0 or all of the due rows are in flight. This times both statements, as
`models.claims` words them, in-process, after claiming C of N due rows (2,000 a claim, as beat
does). It measures; it asserts nothing.
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

from sqlalchemy import Engine

from bench.infra import analyze, infrastructure, step
from bench.seed import ScheduleSeeder
from models.claims import BeatClaims, claim_search
from models.db import make_engine
from models.types import utc_now

BATCH = 2_000
SAMPLES = 7
LEASE = timedelta(minutes=5)


def _median_ms(call: Callable[[], Any]) -> float:
    times = []
    for _ in range(SAMPLES):
        began = time.perf_counter()
        call()
        times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times)


def _measure(engine: Engine, claimed_counts: list[int], due: int) -> list[dict[str, Any]]:
    claims = BeatClaims(engine)
    # The claim's search (its UPDATE aside; on PostgreSQL it locks the rows it finds).
    search_statement = claim_search(engine.dialect.name)
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

        def search() -> None:
            with engine.connect() as conn:  # rolled back: nothing claimed, any lock let go
                conn.execute(search_statement, {"b_now": utc_now(), "b_limit": BATCH}).all()

        row = {
            "claimed": claimed,
            "claim search": _median_ms(search),
            "next_wakeup": _median_ms(lambda: claims.next_wakeup(now=utc_now())),
        }
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

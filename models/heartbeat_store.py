"""Beat heartbeats: each beat process's row, written every few seconds, read by `drumline
beats`, `drumline health` and the exporter."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, delete, insert, select, update

from models.tables import beat_heartbeats

_h = beat_heartbeats.c
# Rows of beats silent this long are deleted when a beat starts, so the table stays small.
FORGET_AFTER = timedelta(days=7)


@dataclass(frozen=True)
class BeatHeartbeat:
    id: int
    host: str
    pid: int
    version: str
    started_at: datetime
    last_tick_at: datetime
    slots_sent: int

    def stale(self, now: datetime, bound: timedelta) -> bool:
        """Whether this beat has not ticked within `bound` of `now`."""
        return now - self.last_tick_at > bound


class HeartbeatStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def register(self, *, host: str, pid: int, version: str, now: datetime) -> int:
        """A new beat's row (forgetting beats long silent); returns its id."""
        with self.engine.begin() as conn:
            conn.execute(delete(beat_heartbeats).where(_h.last_tick_at < now - FORGET_AFTER))
            row_id = conn.execute(
                insert(beat_heartbeats)
                .values(
                    host=host[:255],
                    pid=pid,
                    version=version[:64],
                    started_at=now,
                    last_tick_at=now,
                    slots_sent=0,
                )
                .returning(_h.id)
            ).scalar_one()
        return int(row_id)

    def beat(self, row_id: int, *, now: datetime, slots_sent: int) -> None:
        """Record a tick, with the slots sent since the beat started."""
        with self.engine.begin() as conn:
            conn.execute(
                update(beat_heartbeats)
                .where(_h.id == row_id)
                .values(last_tick_at=now, slots_sent=slots_sent)
            )

    def list(self) -> list[BeatHeartbeat]:
        """Every known beat, the most recently ticking first."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(beat_heartbeats).order_by(_h.last_tick_at.desc(), _h.id)
            ).all()
        return [BeatHeartbeat(**row._mapping) for row in rows]

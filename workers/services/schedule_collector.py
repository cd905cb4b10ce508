"""The exporter's view of the database, read at each scrape: per-producer health, the due
backlog, and each beat's last tick. One exporter serves it, so the database is read once per
scrape, not by every worker."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Engine

from models.heartbeat_store import HeartbeatStore
from models.producer_health import ProducerHealth, due_backlog, producer_health
from models.stored_schedules import schedule_from_row

PRODUCER_LABELS = ["workflow", "producer"]


class ScheduleCollector(Collector):
    def __init__(
        self, engine: Engine, *, stale_after: timedelta, clock: Callable[[], datetime]
    ) -> None:
        self.engine = engine
        self.stale_after = stale_after
        self.clock = clock

    def collect(self) -> Iterator[Metric]:
        now = self.clock()
        yield from self._producers(now)
        backlog = GaugeMetricFamily(
            "drumline_due_backlog", "Producer slots due and not claimed by any beat"
        )
        backlog.add_metric([], due_backlog(self.engine, now))
        yield backlog
        yield from self._beats()

    def _producers(self, now: datetime) -> Iterator[Metric]:
        since = GaugeMetricFamily(
            "drumline_producer_seconds_since_success",
            "Seconds since the producer's last successful run (since its deploy if none)",
            labels=PRODUCER_LABELS,
        )
        failures = GaugeMetricFamily(
            "drumline_producer_consecutive_failures",
            "Failed runs in a row",
            labels=PRODUCER_LABELS,
        )
        next_run = GaugeMetricFamily(
            "drumline_producer_next_run_timestamp_seconds",
            "When the producer runs next (Unix time); absent when it has no next run",
            labels=PRODUCER_LABELS,
        )
        paused = GaugeMetricFamily(
            "drumline_producer_paused", "1 if the producer is paused", labels=PRODUCER_LABELS
        )
        interval = GaugeMetricFamily(
            "drumline_producer_interval_seconds",
            "Time between the producer's next two slots (absent for manual-only producers)",
            labels=PRODUCER_LABELS,
        )
        for row in producer_health(self.engine):
            labels = [row.workflow, row.producer]
            since.add_metric(
                labels, (now - (row.last_success_at or row.created_at)).total_seconds()
            )
            failures.add_metric(labels, row.consecutive_failures)
            paused.add_metric(labels, 1.0 if row.paused else 0.0)
            if row.next_run_at is not None:
                next_run.add_metric(labels, row.next_run_at.timestamp())
            gap = _interval(row, now)
            if gap is not None:
                interval.add_metric(labels, gap)
        yield from (since, failures, next_run, paused, interval)

    def _beats(self) -> Iterator[Metric]:
        last_tick = GaugeMetricFamily(
            "drumline_beat_last_tick_timestamp_seconds",
            "When each beat last recorded a tick (Unix time)",
            labels=["host", "pid"],
        )
        for beat in HeartbeatStore(self.engine).list():
            last_tick.add_metric([beat.host, str(beat.pid)], beat.last_tick_at.timestamp())
        yield last_tick
        stale = GaugeMetricFamily(
            "drumline_beat_stale_after_seconds",
            "A beat silent this long is stale (DRUMLINE_BEAT_STALE_SECONDS)",
        )
        stale.add_metric([], self.stale_after.total_seconds())
        yield stale


def _interval(row: ProducerHealth, now: datetime) -> float | None:
    """The gap between the producer's next two slots: its interval, or its cron's current one."""
    schedule = schedule_from_row(row.schedule_type, row.schedule_value, row.timezone)
    first = schedule.next_after(now)
    second = schedule.next_after(first) if first is not None else None
    if first is None or second is None:
        return None
    return (second - first).total_seconds()

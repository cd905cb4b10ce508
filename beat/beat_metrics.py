"""Beat's Prometheus metrics: what it claimed and sent, how long that took, how late it was.

Recorded in the process's multiprocess files (`beat/metrics_files.py`); `drumline exporter`
serves them. Send lateness is `sent - scheduled_for`: when beat handed the slot to the broker,
not when a worker started it (the workers measure that, `drumline_run_start_lateness_seconds`).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Protocol

from prometheus_client import Counter, Histogram

from beat.lateness_histogram import LatenessHistogram
from beat.metrics_files import best_effort, enable_multiprocess

# From a few milliseconds (a healthy beat) to the lease (a slot sent again after it expired).
LATENESS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900)
DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class BeatRecorder(Protocol):
    """What beat's scheduler reports; a few calls per tick, never per database row."""

    def claimed(self, slots: int, expired_leases: int, seconds: float) -> None: ...
    def sent(self, scheduled: list[datetime], sent_at: datetime, seconds: float) -> None: ...
    def released(self, claims: int) -> None: ...
    def backed_off(self) -> None: ...


class BeatMetrics:
    """The beat metrics, on their own registry (exported from the files, never from here)."""

    def __init__(self) -> None:
        self.claims = Counter("drumline_beat_claims", "Claim statements run by beat", registry=None)
        self.slots_claimed = Counter(
            "drumline_beat_slots_claimed", "Due slots claimed by beat", registry=None
        )
        self.expired_leases_resent = Counter(
            "drumline_beat_expired_leases_resent",
            "Slots claimed again because an earlier claim's lease ran out",
            registry=None,
        )
        self.slots_sent = Counter(
            "drumline_beat_slots_sent", "Producer slots sent to the broker", registry=None
        )
        self.claim_duration = Histogram(
            "drumline_beat_claim_duration_seconds",
            "Time of one claim statement",
            buckets=DURATION_BUCKETS,
            registry=None,
        )
        self.publish_duration = Histogram(
            "drumline_beat_publish_duration_seconds",
            "Time to publish one claimed batch",
            buckets=DURATION_BUCKETS,
            registry=None,
        )
        self.send_lateness = LatenessHistogram(
            "drumline_beat_send_lateness_seconds",
            "Sent minus scheduled_for, per slot",
            buckets=LATENESS_BUCKETS,
            registry=None,
        )
        self.claims_released = Counter(
            "drumline_beat_claims_released",
            "Claims given back because their batch was not sent",
            registry=None,
        )
        self.outage_backoffs = Counter(
            "drumline_beat_outage_backoffs",
            "Ticks that failed (database or broker down) and backed off",
            registry=None,
        )

    @best_effort
    def claimed(self, slots: int, expired_leases: int, seconds: float) -> None:
        # Each update is a file write; most ticks claim nothing, and adding 0 changes nothing.
        self.claims.inc()
        if slots:
            self.slots_claimed.inc(slots)
        if expired_leases:
            self.expired_leases_resent.inc(expired_leases)
        self.claim_duration.observe(seconds)

    @best_effort
    def sent(self, scheduled: list[datetime], sent_at: datetime, seconds: float) -> None:
        self.slots_sent.inc(len(scheduled))
        self.publish_duration.observe(seconds)
        # One write per bucket the batch hits, not two per slot (`LatenessHistogram`).
        self.send_lateness.observe_batch(scheduled, sent_at)

    @best_effort
    def released(self, claims: int) -> None:
        self.claims_released.inc(claims)

    @best_effort
    def backed_off(self) -> None:
        self.outage_backoffs.inc()


class NoBeatMetrics:
    """Metrics off (DRUMLINE_METRICS=off): nothing recorded."""

    def claimed(self, slots: int, expired_leases: int, seconds: float) -> None:
        pass

    def sent(self, scheduled: list[datetime], sent_at: datetime, seconds: float) -> None:
        pass

    def released(self, claims: int) -> None:
        pass

    def backed_off(self) -> None:
        pass


def beat_recorder(metrics_dir: Path | None) -> BeatRecorder:
    """Beat's recorder: multiprocess files under `metrics_dir`, or none when it is None."""
    if metrics_dir is None:
        return NoBeatMetrics()
    enable_multiprocess(metrics_dir, "beat")
    return BeatMetrics()

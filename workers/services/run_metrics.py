"""The workers' Prometheus metrics: runs by outcome, run duration, start lateness, and the
messages that ran nothing.

Recorded in each pool process's multiprocess files (`beat/metrics_files.py`), under the
directory the worker's main process set up before forking, so counts add up across pool
processes and survive one being replaced; `drumline exporter` merges and serves them.

Labels are bounded: `workflow` (and `producer` only with DRUMLINE_METRICS_PRODUCER_LABELS=on)
come from the database-confirmed run, never from a message that ran nothing; those are counted
by reason alone, so a flood of forged messages cannot create series.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

from prometheus_client import Counter, Histogram

from beat.beat_metrics import DURATION_BUCKETS, LATENESS_BUCKETS
from beat.metrics_files import best_effort, enable_multiprocess
from models.vocabulary import SkipReason

RUN_DURATION_BUCKETS = (*DURATION_BUCKETS, 30, 60, 120, 300, 600)


class RunRecorder(Protocol):
    """What the run path reports: one or two calls per message."""

    def dropped(self, reason: str) -> None: ...
    def started(
        self, workflow: str, producer: str, scheduled_for: datetime, started_at: datetime
    ) -> None: ...
    def finished(
        self,
        workflow: str,
        producer: str,
        *,
        trigger: str,
        outcome: str,
        seconds: float | None,
        attempt: int,
    ) -> None: ...


@dataclass
class _Series:
    """One workflow's (or producer's) label children."""

    duration: Histogram
    start_lateness: Histogram
    retries: Counter
    runs: dict[tuple[str, str], Counter]


class RunMetrics:
    """The run metrics, on their own registry (exported from the files, never from here)."""

    def __init__(self, *, producer_labels: bool) -> None:
        self.producer_labels = producer_labels
        names = ("workflow", "producer") if producer_labels else ("workflow",)
        self.runs = Counter(
            "drumline_runs",
            "Runs finished, by outcome (succeeded, failed, superseded, skipped) and trigger",
            [*names, "trigger", "outcome"],
            registry=None,
        )
        self.duration = Histogram(
            "drumline_run_duration_seconds",
            "Time a producer ran",
            names,
            buckets=RUN_DURATION_BUCKETS,
            registry=None,
        )
        self.start_lateness = Histogram(
            "drumline_run_start_lateness_seconds",
            "Started minus scheduled_for, per scheduled run",
            names,
            buckets=LATENESS_BUCKETS,
            registry=None,
        )
        self.retries = Counter(
            "drumline_run_retries",
            "Runs started again after their first attempt was lost (worker died, lease expired)",
            names,
            registry=None,
        )
        self.messages_dropped = Counter(
            "drumline_run_messages_dropped",
            "run_producer messages that ran nothing (stale, superseded claim, finished, refused)",
            ["reason"],
            registry=None,
        )
        self._by_labels: dict[tuple[str, ...], _Series] = {}
        self._dropped_by_reason: dict[str, Counter] = {}

    def _series(self, workflow: str, producer: str) -> _Series:
        """The label children of one workflow (or producer), looked up once: `labels()` costs
        as much as the update itself."""
        key = (workflow, producer) if self.producer_labels else (workflow,)
        series = self._by_labels.get(key)
        if series is None:
            series = _Series(
                duration=self.duration.labels(*key),
                start_lateness=self.start_lateness.labels(*key),
                retries=self.retries.labels(*key),
                runs={},
            )
            self._by_labels[key] = series
        return series

    @best_effort
    def dropped(self, reason: str) -> None:
        # Reasons are a closed set (`reason_label`), so the cache stays small.
        dropped = self._dropped_by_reason.get(reason)
        if dropped is None:
            dropped = self._dropped_by_reason[reason] = self.messages_dropped.labels(reason)
        dropped.inc()

    @best_effort
    def started(
        self, workflow: str, producer: str, scheduled_for: datetime, started_at: datetime
    ) -> None:
        late = max(0.0, (started_at - scheduled_for).total_seconds())
        self._series(workflow, producer).start_lateness.observe(late)

    @best_effort
    def finished(
        self,
        workflow: str,
        producer: str,
        *,
        trigger: str,
        outcome: str,
        seconds: float | None,
        attempt: int,
    ) -> None:
        series = self._series(workflow, producer)
        runs = series.runs.get((trigger, outcome))
        if runs is None:
            key = (workflow, producer) if self.producer_labels else (workflow,)
            runs = series.runs[(trigger, outcome)] = self.runs.labels(*key, trigger, outcome)
        runs.inc()
        if seconds is not None:
            series.duration.observe(seconds)
        if attempt > 1:
            series.retries.inc()


class NoRunMetrics:
    """Metrics off (DRUMLINE_METRICS=off): nothing recorded."""

    def dropped(self, reason: str) -> None:
        pass

    def started(
        self, workflow: str, producer: str, scheduled_for: datetime, started_at: datetime
    ) -> None:
        pass

    def finished(
        self,
        workflow: str,
        producer: str,
        *,
        trigger: str,
        outcome: str,
        seconds: float | None,
        attempt: int,
    ) -> None:
        pass


def reason_label(reason: SkipReason | str) -> str:
    """A short label value: the enum's name (`stale_message`), not its sentence."""
    return reason.name.lower() if isinstance(reason, SkipReason) else reason


class _Holder:
    recorder: RunRecorder = NoRunMetrics()


def enable_run_metrics(metrics_dir: Path | None, *, producer_labels: bool) -> None:
    """In the worker's main process, before the pool forks: record into `metrics_dir`."""
    if metrics_dir is None:
        _Holder.recorder = NoRunMetrics()
        return
    enable_multiprocess(metrics_dir, "worker")
    _Holder.recorder = RunMetrics(producer_labels=producer_labels)


def run_recorder() -> RunRecorder:
    """This process's recorder (no metrics unless `enable_run_metrics` ran)."""
    return _Holder.recorder

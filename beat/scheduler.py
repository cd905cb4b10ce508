"""`ProducerScheduler`: Celery beat that also sends every due producer slot.

`celery -A workers.app beat -S beat.scheduler:ProducerScheduler`. Celery's own `beat_schedule`
entries keep working, held in memory as `celery.beat.Scheduler` holds them. Producer schedules
live in the database; any number of beats may run at once, because the atomic claim, not a
leader lock, keeps a slot from being sent twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import Any

from celery.beat import Scheduler
from celery.exceptions import ImproperlyConfigured
from kombu.exceptions import OperationalError as BrokerError
from sqlalchemy.exc import DBAPIError

from beat.beat_metrics import BeatRecorder, beat_recorder
from beat.dispatch import RunProducerPublisher
from beat.heartbeat import Heartbeat
from models.catchup import plan_slot
from models.claims import BeatClaims
from models.db import make_engine, redact_url
from models.heartbeat_store import HeartbeatStore
from models.log_text import loggable
from models.records import ClaimedSlot
from models.trigger_claims import TriggerClaims
from models.types import utc_now

logger = logging.getLogger("drumline.beat")

FIRST_BACKOFF_S = 0.5
MAX_BACKOFF_S = 10.0
# Expected while the database or broker is down: logged without a traceback.
_OUTAGES = (DBAPIError, BrokerError, OSError)


@dataclass(frozen=True)
class BeatSettings:
    """The `drumline_*` keys beat reads from the app's configuration.

    workers/celery_config writes them from drumline's settings, which hold the defaults: beat
    has none of its own, and a missing key is refused naming it.
    """

    database_url: str
    lease: timedelta
    batch: int
    # Where the metrics files go (None: metrics off), and how stale a beat may get.
    metrics_dir: Path | None
    stale_after: timedelta

    @classmethod
    def from_conf(cls, conf: Mapping[str, Any]) -> BeatSettings:
        return cls(
            database_url=str(_required(conf, "drumline_database_url")),
            lease=timedelta(seconds=float(_required(conf, "drumline_lease_seconds"))),
            batch=int(_required(conf, "drumline_beat_batch")),
            metrics_dir=Path(conf["drumline_metrics_dir"])
            if conf.get("drumline_metrics_dir")
            else None,
            stale_after=timedelta(seconds=float(_required(conf, "drumline_beat_stale_seconds"))),
        )


def _required(conf: Mapping[str, Any], key: str) -> Any:
    value = conf.get(key)
    if value is None or value == "":
        raise ImproperlyConfigured(f"{key} is not set in the Celery config")
    return value


class Backoff:
    """Exponentially longer pauses after consecutive failures, so an outage is not hammered."""

    def __init__(self, first: float = FIRST_BACKOFF_S, cap: float = MAX_BACKOFF_S) -> None:
        self.first = first
        self.cap = cap
        self._delay = first
        self._retry_at = 0.0

    def remaining(self) -> float:
        """Seconds left before the next attempt is allowed."""
        return max(0.0, self._retry_at - time.monotonic())

    def failed(self) -> float:
        """Note a failure; returns the pause before the next attempt."""
        delay = self._delay
        self._delay = min(delay * 2, self.cap)
        self._retry_at = time.monotonic() + delay
        return delay

    def succeeded(self) -> None:
        self._delay = self.first
        self._retry_at = 0.0


class ProducerScheduler(Scheduler):  # type: ignore[misc]
    """Each tick: Celery's static entries, one claimed batch of due producer slots, then the
    trigger requests whose time has come."""

    max_interval: float

    def __init__(self, app: Any, *args: Any, **kwargs: Any) -> None:
        # Read first: the base class runs setup_schedule(), which logs them.
        self.settings = BeatSettings.from_conf(app.conf)
        self.backoff = Backoff()
        super().__init__(app, *args, **kwargs)
        # `beat_max_loop_interval` (DRUMLINE_BEAT_MAX_INTERVAL_SECONDS) or `--max-interval`.
        self.max_interval = float(self.max_interval)

    @cached_property
    def store(self) -> BeatClaims:
        """Built on first use: `celery beat` also creates throwaway lazy instances."""
        return BeatClaims(make_engine(self.settings.database_url))

    @cached_property
    def metrics(self) -> BeatRecorder:
        return beat_recorder(self.settings.metrics_dir)

    @cached_property
    def heartbeat(self) -> Heartbeat:
        # Three writes within the staleness bound, so one slow write does not look like death.
        every = min(timedelta(seconds=5), self.settings.stale_after / 3)
        return Heartbeat(HeartbeatStore(self.store.engine), every)

    @cached_property
    def _publisher(self) -> RunProducerPublisher:
        return RunProducerPublisher(self.app)

    def setup_schedule(self) -> None:
        super().setup_schedule()
        logger.info(
            "beat: producer schedules in %s (lease %gs, batch %d, max interval %gs)",
            redact_url(self.settings.database_url),
            self.settings.lease.total_seconds(),
            self.settings.batch,
            self.max_interval,
        )

    def tick(self, *args: Any, **kwargs: Any) -> float:
        """Send what is due; return the seconds until something can be due again.

        0 after a full batch (a backlog drains without sleeping); otherwise the time until the
        next static entry, producer run or lease expiry, bounded by `max_interval` so a schedule
        deployed meanwhile, or another beat's released claim, is picked up soon.
        """
        # The base class may return a slightly negative delay (its drift adjustment): "now".
        static_delay = max(0.0, float(super().tick(*args, **kwargs)))
        return min(static_delay, self._tick_producers())

    def close(self) -> None:
        """Release the broker connection (base class) and the database engine; idempotent."""
        try:
            super().close()
        finally:
            self.__dict__.pop("trigger_claims", None)  # shares the store's engine
            store = self.__dict__.pop("store", None)
            if store is not None:
                store.engine.dispose()

    def _tick_producers(self) -> float:
        """Never raises: beat must outlive database and broker outages, retrying with backoff."""
        waiting = self.backoff.remaining()
        if waiting > 0:
            return waiting
        try:
            delay = self._dispatch_due()
        except Exception as exc:
            retry_in = self.backoff.failed()
            self.metrics.backed_off()
            logger.error(
                "beat: cannot dispatch producer runs, retrying in %.1fs: %s: %s",
                retry_in,
                type(exc).__name__,
                exc,
                exc_info=not isinstance(exc, _OUTAGES),
            )
            return retry_in
        self.backoff.succeeded()
        return delay

    def _dispatch_due(self) -> float:
        """Heartbeat, then due slots claimed and sent, then due trigger requests.

        Slots go first: they are the hot path, and a slot's send lateness is what the tick does
        before its publish, so the trigger claim (another round trip) waits until after it.
        Trigger requests (`trigger --at`, backfill) are rare and tolerate that delay; they are
        still claimed every tick, a full batch's included, so a burst cannot starve them.
        """
        now = utc_now()
        # Before the claim: a heartbeat that cannot be written must not strand claimed slots.
        self.heartbeat.ticked(now)
        full_batch = self._dispatch_due_slots(now)
        self._dispatch_due_triggers(now)
        return 0.0 if full_batch else self._until_next_wakeup()

    def _dispatch_due_slots(self, now: datetime) -> bool:
        """Claim and send one batch of due slots; True if the batch was full (more may wait)."""
        began = time.perf_counter()
        claimed = self.store.claim_due(
            now=now, lease=self.settings.lease, limit=self.settings.batch
        )
        expired = sum(slot.lease_expired for slot in claimed)
        self.metrics.claimed(len(claimed), expired, time.perf_counter() - began)
        if not claimed:
            return False
        slots = self._catch_up(claimed, now)
        if slots:
            self._publish(slots)
        return len(claimed) >= self.settings.batch

    def _catch_up(self, claimed: list[ClaimedSlot], now: datetime) -> list[ClaimedSlot]:
        """The messages to send for the claimed slots: a late slot first goes through its
        producer's catch-up policy (`models.catchup`), which may send another slot or none
        and records the slots passed over. If that fails, every claim is given back."""
        slots = []
        try:
            for slot in claimed:
                message, decision = plan_slot(slot, now)
                if decision is not None and self.store.was_started(slot):
                    message, decision = plan_slot(slot, now, as_it_is=True)
                if decision is not None:
                    if not self.store.move_claimed(slot, decision, now=now):
                        continue  # the claim was lost: another beat's or a redeploy's now
                    logger.info(
                        "beat: %s late: %s",
                        loggable(f"{slot.workflow_name}.{slot.producer_name}"),
                        "; ".join(f"{e.outcome} from {e.slot:%H:%M:%S}" for e in decision.entries)
                        or "runs as it is",
                    )
                if message is not None and message.start_by is not None:
                    # It expires at its deadline: then beat may record it missed at once.
                    until = min(message.claimed_until, message.start_by)
                    if not self.store.shorten_claim(message, until):
                        continue
                    message = replace(message, claimed_until=until)
                if message is not None:
                    slots.append(message)
        except BaseException:
            self._release(claimed)
            raise
        return slots

    def _publish(self, slots: list[ClaimedSlot]) -> None:
        """Send the batch in one Redis pipeline (`RunProducerPublisher.publish_batch`).

        If anything fails before the batch is flushed, every claim of the batch is given back,
        since it is unknown which messages reached the broker. A message that did arrive then
        carries a stale token and runs nothing; a claim a worker has already taken is kept
        (see `release_claims`).
        """
        flushed = False
        began = time.perf_counter()
        try:
            with self.app.producer_or_acquire() as producer:
                for task_id in self._publisher.publish_batch(producer, slots):
                    logger.debug("beat: sent %s", task_id)
                flushed = True
        except BaseException:
            # BaseException too: beat's SIGTERM handler raises SystemExit, possibly mid-batch.
            if not flushed:
                self._release(slots)
            raise
        sent_at = utc_now()
        self.metrics.sent([s.scheduled_for for s in slots], sent_at, time.perf_counter() - began)
        self.heartbeat.sent(len(slots))
        lateness = sent_at - min(slot.scheduled_for for slot in slots)
        logger.info(
            "beat: sent %d producer runs, worst lateness %.0f ms",
            len(slots),
            lateness / timedelta(milliseconds=1),
        )

    def _dispatch_due_triggers(self, now: datetime) -> None:
        """Send the trigger requests whose slot has come (`drumline trigger --at`). A claim
        lost before its message is sent is sent again after the lease, like a slot's."""
        requests = self.trigger_claims.claim_due(
            now=now, lease=self.settings.lease, limit=self.settings.batch
        )
        if not requests:
            return
        with self.app.producer_or_acquire() as producer:
            for task_id in self._publisher.publish_triggers(producer, requests):
                logger.info("beat: sent %s", task_id)

    @cached_property
    def trigger_claims(self) -> TriggerClaims:
        return TriggerClaims(self.store.engine)

    def _release(self, slots: list[ClaimedSlot]) -> None:
        """Make unsent slots due again at once rather than when their lease ends."""
        try:
            released = self.store.release_claims(slots)
        except Exception as exc:
            logger.error(
                "beat: cannot release %d unsent claims; they are due again when their lease"
                " ends: %s",
                len(slots),
                exc,
            )
        else:
            self.metrics.released(released)
            logger.warning("beat: released %d unsent claims", released)

    def _until_next_wakeup(self) -> float:
        now = utc_now()
        wakeup = self.store.next_wakeup(now=now)
        if wakeup is None:
            return self.max_interval
        return min(max(0.0, (wakeup - now).total_seconds()), self.max_interval)

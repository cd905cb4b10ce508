"""A beat that dies between claiming a batch and sending it, as a crash would kill it there.

Started as `celery -A workers.app beat -S tests.crashing_beat:CrashingScheduler`; production
code has no hook for it.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

from beat.scheduler import ProducerScheduler
from models.records import ClaimedSlot
from tests.processes import beat_args


class CrashingScheduler(ProducerScheduler):
    """SIGKILLs its own process once it holds claims, before any message is sent."""

    def _publish(self, slots: list[ClaimedSlot]) -> None:
        os.kill(os.getpid(), signal.SIGKILL)


def crashing_beat_args(log_dir: Path, name: str) -> list[str]:
    """`beat_args` with this scheduler: click keeps the last `--scheduler` given."""
    return [*beat_args(log_dir, name), f"--scheduler={__name__}:CrashingScheduler"]

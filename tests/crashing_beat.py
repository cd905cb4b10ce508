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
from workers.local.celery_argv import beat_argv


class CrashingScheduler(ProducerScheduler):
    """SIGKILLs its own process once it holds claims, before any message is sent."""

    def _publish(self, slots: list[ClaimedSlot]) -> None:
        os.kill(os.getpid(), signal.SIGKILL)


def crashing_beat_args(log_dir: Path, name: str) -> list[str]:
    """Beat's command line with this scheduler instead of drumline's."""
    return beat_argv(log_dir, name, scheduler=f"{__name__}:CrashingScheduler")

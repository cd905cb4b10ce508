"""A per-run time limit that ends a producer with an exception the run path can record.

Celery's hard time limit kills the pool process, so the run could not commit its failure and
its slot would be retried forever. An alarm raised inside the producer lets the run fail
cleanly, keep its error and move on to its next slot. Celery's hard limit stays as a backstop.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType


class ProducerTimeoutError(Exception):
    """The producer ran past its time limit."""


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise ProducerTimeoutError in the block after `seconds` (prefork and solo pools)."""
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError("drumline time limits need the prefork or solo pool (main thread)")

    def _expired(_signum: int, _frame: FrameType | None) -> None:
        raise ProducerTimeoutError(f"timed out after {seconds:g}s")

    previous = signal.signal(signal.SIGALRM, _expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)

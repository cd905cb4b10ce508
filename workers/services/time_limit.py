"""A per-run time limit that ends a producer with an exception the run path can record.

Celery's hard time limit kills the pool process, so the run could not commit its failure and
its slot would be retried forever. An alarm raised inside the producer lets the run fail
cleanly, keep its error and move on to its next slot. Celery's hard limit stays as a backstop.

A producer may catch the exception (a broad `except Exception`). So the alarm is re-armed each
time it fires: the producer gets the exception again every `again_every` seconds until it
leaves the block, and the run path records any run that outlived its limit as timed out,
whatever it returned.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType, TracebackType


class ProducerTimeoutError(Exception):
    """The producer ran past its time limit."""


class TimeLimit:
    """Raise ProducerTimeoutError in the block after `seconds`, and again every `again_every`
    seconds while the block goes on (prefork and solo pools: the main thread only)."""

    def __init__(self, seconds: float, *, again_every: float) -> None:
        self.seconds = seconds
        self.again_every = again_every
        self._previous: object = None

    def __enter__(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            raise RuntimeError("drumline time limits need the prefork or solo pool (main thread)")
        self._previous = signal.signal(signal.SIGALRM, self._expired)
        signal.setitimer(signal.ITIMER_REAL, self.seconds)

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _traceback: TracebackType | None,
    ) -> None:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, self._previous)  # type: ignore[arg-type]

    def _expired(self, _signum: int, frame: FrameType | None) -> None:
        if frame is not None and frame.f_code is _EXIT_CODE:
            # The block is over and __exit__ is disarming: an exception raised here would
            # escape it and leave the re-armed alarm behind to strike outside the producer.
            return
        signal.setitimer(signal.ITIMER_REAL, self.again_every)
        raise ProducerTimeoutError(f"timed out after {self.seconds:g}s")


_EXIT_CODE = TimeLimit.__exit__.__code__

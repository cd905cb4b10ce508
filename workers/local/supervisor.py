"""The child processes of `drumline up`: started with one environment, stopped together.

Each is a `ChildProcess` (its own session and log). On stop every child gets SIGTERM at once (a
warm shutdown for Celery), then, after one shared deadline, SIGKILL to each whole process group.
On Linux a child is also sent SIGTERM if `up` itself is killed outright.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

from workers.local.child import ChildProcess


class Interrupts:
    """SIGINT, SIGTERM and SIGHUP as KeyboardInterrupt, held back while a child is spawned.

    An interrupt between the fork and the moment the child is recorded would leave an orphan
    nobody stops; while `deferred()` is active the signal is remembered and raised at its end.
    SIGHUP is included because closing the terminal must stop the children too.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def __init__(self) -> None:
        self._depth = 0
        self._pending = False

    def install(self) -> None:
        for signum in self.SIGNALS:
            signal.signal(signum, self._handle)

    def ignore(self) -> None:
        """From now on, interrupts change nothing: the shutdown under way must finish."""
        for signum in self.SIGNALS:
            signal.signal(signum, signal.SIG_IGN)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self._depth:
            self._pending = True
            return
        raise KeyboardInterrupt

    @contextmanager
    def deferred(self) -> Iterator[None]:
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
        if not self._depth and self._pending:
            self._pending = False
            raise KeyboardInterrupt


class Supervisor:
    """Starts children with one environment and working directory, and stops them all."""

    def __init__(
        self, *, env: Mapping[str, str], cwd: Path, log_dir: Path, interrupts: Interrupts
    ) -> None:
        self.env = dict(env)
        self.cwd = cwd
        self.log_dir = log_dir
        self.interrupts = interrupts
        self.children: list[ChildProcess] = []

    def spawn(
        self, name: str, argv: Sequence[str], extra_env: Mapping[str, str] | None = None
    ) -> ChildProcess:
        """Start `argv` in a new session with its output appended to `<log_dir>/<name>.log`."""
        child = ChildProcess(
            name,
            argv,
            env={**self.env, **(extra_env or {})},
            log_path=self.log_dir / f"{name}.log",
            cwd=self.cwd,
            die_with_parent=True,
        )
        # An interrupt between the fork and this list must not leave a child nobody stops.
        with self.interrupts.deferred():
            self.children.append(child.start())
        return child

    def check(self) -> None:
        """Raise if any child has exited: `up` runs all of them or none."""
        for child in self.children:
            child.check()

    def stop(self, grace: float) -> None:
        """SIGTERM every child, wait up to `grace` seconds, then SIGKILL every process group."""
        for child in self.children:
            child.terminate()
        deadline = time.monotonic() + grace
        for child in self.children:
            child.wait(deadline - time.monotonic())
        for child in self.children:
            child.kill()

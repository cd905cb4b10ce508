"""The child processes of `drumline up`: started with one environment, restarted when they
die, stopped together.

Each is a `ChildProcess` (its own session and log). A child that exits is started again after
a backoff (1 s, doubling up to 30 s), each restart reported; one that dies more than 5 times
within 5 minutes is given up on, and `up` stops (`RestartPolicy`). A worker that
exits on a lost broker (kombu's reconnect can fail with `'NoneType' object has no attribute`)
is so back as soon as Redis is. On stop every child gets SIGTERM at once (a warm shutdown for
Celery), then, after one shared deadline, SIGKILL to each whole process group. On Linux a child
is also sent SIGTERM if `up` itself is killed outright.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from workers.local.child import ChildExitedError, ChildProcess


@dataclass(frozen=True)
class RestartPolicy:
    """At most `limit` restarts of one child within `window_s`; the n-th restart in that window
    waits `first_backoff_s * 2**n`, at most `max_backoff_s`."""

    limit: int = 5
    window_s: float = 300.0
    first_backoff_s: float = 1.0
    max_backoff_s: float = 30.0


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


class Restarts:
    """One child's restart history: when the next start is due, and whether to give up."""

    def __init__(self, policy: RestartPolicy) -> None:
        self.policy = policy
        self.times: list[float] = []
        self.due_at: float | None = None

    def plan(self, now: float) -> float | None:
        """The backoff before the next start, or None once the limit is reached."""
        policy = self.policy
        self.times = [t for t in self.times if now - t < policy.window_s]
        if len(self.times) >= policy.limit:
            return None
        backoff: float = min(policy.max_backoff_s, policy.first_backoff_s * 2.0 ** len(self.times))
        self.due_at = now + backoff
        return backoff

    def started(self, now: float) -> None:
        self.times.append(now)
        self.due_at = None


class Supervisor:
    """Starts children with one environment and working directory, restarts those that die
    (reporting each through `report`), and stops them all."""

    def __init__(
        self,
        *,
        env: Mapping[str, str],
        cwd: Path,
        log_dir: Path,
        interrupts: Interrupts,
        report: Callable[[str], None],
        policy: RestartPolicy = RestartPolicy(),
    ) -> None:
        self.env = dict(env)
        self.cwd = cwd
        self.log_dir = log_dir
        self.interrupts = interrupts
        self.report = report
        self.policy = policy
        self.children: list[ChildProcess] = []
        self.restarts: dict[str, Restarts] = {}

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
        """Restart each child that has exited once its backoff is over; raise ChildExitedError
        for one that reached the restart limit."""
        now = time.monotonic()
        for index, child in enumerate(self.children):
            if child.alive():
                continue
            restarts = self.restarts.setdefault(child.name, Restarts(self.policy))
            if restarts.due_at is None:
                backoff = restarts.plan(now)
                if backoff is None:
                    raise ChildExitedError(
                        f"{child.exit_message()}; restarted {self.policy.limit} times within "
                        f"{self.policy.window_s:g}s already, giving up"
                    )
                self.report(f"{child.exit_message()}; restarting it in {backoff:g}s")
            elif now >= restarts.due_at:
                restarts.started(now)
                replacement = ChildProcess(
                    child.name,
                    child.argv,
                    env=child.env,
                    log_path=child.log_path,
                    cwd=child.cwd,
                    die_with_parent=True,
                )
                with self.interrupts.deferred():
                    self.children[index] = replacement.start()
                self.report(
                    f"{child.name} restarted (pid {replacement.pid}; restart "
                    f"{len(restarts.times)} of at most {self.policy.limit} within "
                    f"{self.policy.window_s:g}s)"
                )

    def stop(self, grace: float) -> None:
        """SIGTERM every child, wait up to `grace` seconds, then SIGKILL every process group."""
        for child in self.children:
            child.terminate()
        deadline = time.monotonic() + grace
        for child in self.children:
            child.wait(deadline - time.monotonic())
        for child in self.children:
            child.kill()

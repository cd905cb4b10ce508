"""The child processes of `drumline up`: started in their own process groups, stopped together.

Each child runs in its own session, so a Ctrl-C in the terminal reaches `drumline up` alone, which
then stops the children itself: SIGTERM to each (a warm shutdown for Celery), then, after a
deadline, SIGKILL to each whole process group, which also takes any prefork pool process a worker
left behind. On Linux a child is also sent SIGTERM if `up` itself is killed outright.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

POLL_S = 0.1
MAX_LINE = 200
PR_SET_PDEATHSIG = 1
# Loaded here: a forked child must not run the dynamic loader before it execs.
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform == "linux" else None


class StartupError(RuntimeError):
    """A child died or did not become ready while starting."""


class ChildExitedError(RuntimeError):
    """A child that should be running has exited."""


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


@dataclass
class Child:
    """One running child; readiness looks only at log lines written since it started."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    log_start: int

    def logged(self, text: str) -> bool:
        with self.log_path.open("rb") as log:
            log.seek(self.log_start)
            return text.encode() in log.read()

    def last_log_line(self) -> str:
        with self.log_path.open("rb") as log:
            log.seek(self.log_start)
            lines = log.read().decode(errors="replace").strip().splitlines()
        last = lines[-1].strip() if lines else "(no output)"
        return last if len(last) <= MAX_LINE else f"{last[:MAX_LINE]}..."

    def exit_message(self) -> str:
        how = _exit_status(self.process.returncode)
        return f"{self.name} {how}; last line of {self.log_path}: {self.last_log_line()}"


class Supervisor:
    """Starts children with one environment and working directory, and stops them all."""

    def __init__(
        self, *, env: Mapping[str, str], cwd: Path, log_dir: Path, interrupts: Interrupts
    ) -> None:
        self.env = dict(env)
        self.cwd = cwd
        self.log_dir = log_dir
        self.interrupts = interrupts
        self.children: list[Child] = []

    def spawn(
        self, name: str, argv: Sequence[str], extra_env: Mapping[str, str] | None = None
    ) -> Child:
        """Start `argv` in a new session with its output appended to `<log_dir>/<name>.log`."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{name}.log"
        with self.interrupts.deferred(), log_path.open("ab") as log:
            log_start = log.tell()  # before the child shares, and moves, the file offset
            process = subprocess.Popen(
                list(argv),
                env={**self.env, **(extra_env or {})},
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent if _LIBC is not None else None,
            )
            child = Child(name, process, log_path, log_start)
            self.children.append(child)
        return child

    def wait_ready(self, child: Child, ready: Callable[[], bool], timeout: float) -> None:
        """Poll `ready` until it holds; raise if the child dies or the timeout passes."""
        deadline = time.monotonic() + timeout
        while not ready():
            if child.process.poll() is not None:
                raise StartupError(child.exit_message())
            if time.monotonic() > deadline:
                raise StartupError(
                    f"{child.name} was not ready within {timeout:g}s; see {child.log_path}"
                )
            time.sleep(POLL_S)

    def check(self) -> None:
        """Raise if any child has exited: `up` runs all of them or none."""
        for child in self.children:
            if child.process.poll() is not None:
                raise ChildExitedError(child.exit_message())

    def stop(self, grace: float) -> None:
        """SIGTERM every child, wait up to `grace` seconds, then SIGKILL every process group."""
        for child in self.children:
            if child.process.poll() is None:
                with suppress(ProcessLookupError):
                    child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for child in self.children:
            with suppress(subprocess.TimeoutExpired):
                child.process.wait(max(deadline - time.monotonic(), 0))
        for child in self.children:
            _kill_group(child.process)


def _die_with_parent() -> None:
    """Runs in the child before exec: SIGTERM it when `up` dies (SIGKILL, OOM killer)."""
    assert _LIBC is not None
    _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _exit_status(code: int) -> str:
    if code >= 0:
        return f"exited with {code}"
    try:
        return f"was killed by {signal.Signals(-code).name}"
    except ValueError:
        return f"was killed by signal {-code}"


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL the child's whole process group, which outlives the child if it left any member."""
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()

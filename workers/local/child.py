"""One child process, as `drumline up`, the tests and the benchmark start them.

A child runs in its own session, so a Ctrl-C in the terminal reaches its parent alone, which then
stops the child itself: SIGTERM (a warm shutdown for Celery), then, after a deadline, SIGKILL to
the whole process group, which also takes any prefork pool process a worker left behind. Its
output is appended to a log file, and readiness looks only at what it logged since it started.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from dataclasses import KW_ONLY, dataclass, field
from functools import partial
from pathlib import Path
from typing import Self

POLL_S = 0.1
MAX_LINE = 200
PR_SET_PDEATHSIG = 1
# Loaded here: a forked child must not run the dynamic loader before it execs.
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform == "linux" else None


class StartupError(RuntimeError):
    """A child died or did not become ready while starting."""


class ChildExitedError(RuntimeError):
    """A child that should be running has exited."""


@dataclass(eq=False)
class ChildProcess:
    """`argv` in a new session, its output appended to `log_path`.

    `stdin_text` is written to the child's stdin, which is then closed: how a secret reaches it
    without showing in `ps`. With `die_with_parent` (Linux) the child is sent SIGTERM when the
    thread that started it dies, even by SIGKILL.
    """

    name: str
    argv: Sequence[str]
    _: KW_ONLY
    env: Mapping[str, str]
    log_path: Path
    cwd: Path | None = None
    stdin_text: str | None = None
    die_with_parent: bool = False
    log_start: int = field(default=0, init=False)
    _process: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    def start(self) -> Self:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.log_start = log.tell()  # before the child shares, and moves, the file offset
            self._process = subprocess.Popen(
                list(self.argv),
                env=self.env,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL if self.stdin_text is None else subprocess.PIPE,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent if self.die_with_parent and _LIBC else None,
            )
        if self.stdin_text is not None:
            assert self._process.stdin is not None
            self._process.stdin.write(self.stdin_text.encode())
            self._process.stdin.close()
        return self

    @property
    def process(self) -> subprocess.Popen[bytes]:
        if self._process is None:
            raise RuntimeError(f"{self.name} has not been started")
        return self._process

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def log(self) -> str:
        """What the child has logged since it started."""
        try:
            with self.log_path.open("rb") as log:
                log.seek(self.log_start)
                return log.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def logged(self, text: str) -> bool:
        return text in self.log()

    def last_log_line(self) -> str:
        lines = self.log().strip().splitlines()
        last = lines[-1].strip() if lines else "(no output)"
        return last if len(last) <= MAX_LINE else f"{last[:MAX_LINE]}..."

    def exit_message(self) -> str:
        how = _exit_status(self.process.returncode)
        return f"{self.name} {how}; last line of {self.log_path}: {self.last_log_line()}"

    def wait_until(self, ready: Callable[[], bool], timeout: float) -> None:
        """Poll `ready` until it holds; raise if the child dies or the timeout passes."""
        deadline = time.monotonic() + timeout
        while not ready():
            if self.process.poll() is not None:
                raise StartupError(self.exit_message())
            if time.monotonic() > deadline:
                raise StartupError(
                    f"{self.name} was not ready within {timeout:g}s; see {self.log_path}"
                )
            time.sleep(POLL_S)

    def wait_for_log(self, text: str, timeout: float) -> None:
        self.wait_until(partial(self.logged, text), timeout)

    def check(self) -> None:
        """Raise if the child has exited."""
        if self.process.poll() is not None:
            raise ChildExitedError(self.exit_message())

    def terminate(self) -> None:
        """SIGTERM the child if it runs: a warm shutdown for Celery."""
        if self.alive():
            with suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)

    def wait(self, timeout: float) -> bool:
        """Whether the child exited within `timeout` seconds."""
        try:
            self.process.wait(max(timeout, 0))
        except subprocess.TimeoutExpired:
            return False
        return True

    def kill(self) -> None:
        """SIGKILL the child's whole process group (which outlives the child if it left any
        member), and reap the child."""
        if self._process is None:
            return
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(self._process.pid, signal.SIGKILL)
        self._process.wait()

    def stop(self, grace: float) -> int | None:
        """SIGTERM, up to `grace` seconds to exit, then SIGKILL to the whole process group;
        returns the child's exit code (None if it was never started)."""
        if self._process is None:
            return None
        self.terminate()
        self.wait(grace)
        self.kill()
        return self._process.returncode


def _die_with_parent() -> None:
    """Runs in the child before exec: SIGTERM it when its parent dies (SIGKILL, OOM killer)."""
    assert _LIBC is not None
    _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _exit_status(code: int) -> str:
    if code >= 0:
        return f"exited with {code}"
    try:
        return f"was killed by {signal.Signals(-code).name}"
    except ValueError:
        return f"was killed by signal {-code}"

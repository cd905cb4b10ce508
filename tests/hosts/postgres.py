"""A PostgreSQL server on one host of the harness, from pgserver's binaries.

PostgreSQL refuses to run as root, so it runs as pgserver's own system user (the one the
`postgres_admin_url` fixture's server uses too). It listens on its host's address only and
wants a password (scram-sha-256) from every other host. It can be stopped and started again on
the same data directory, which is how a test restarts the database under load.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path

from workers.local.child import ChildProcess
from workers.local.redis_server import port_in_use

PORT = 5432
SYSTEM_USER = "pgserver"
READY_TIMEOUT_S = 60.0
STOP_GRACE_S = 20.0


def _bin(name: str) -> str:
    from pgserver._commands import POSTGRES_BIN_PATH

    return str(POSTGRES_BIN_PATH / name)


class PostgresServer:
    """`postgres` in `data_dir` (created here), run under `launcher`, listening on `host`."""

    def __init__(self, data_dir: Path, *, host: str, subnet: str, launcher: Sequence[str]):
        self.data_dir = data_dir
        self.host = host
        self.subnet = subnet
        self.launcher = tuple(launcher)
        self.password = secrets.token_urlsafe(24)
        self.child: ChildProcess | None = None
        self._initialised = False

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres:{self.password}@{self.host}:{PORT}/postgres"

    def _initdb(self) -> None:
        from pgserver.utils import ensure_user_exists

        user = ensure_user_exists(SYSTEM_USER)
        assert user is not None
        self.data_dir.parent.chmod(0o711)  # the server's user may pass through, not list
        self.data_dir.mkdir(mode=0o700)
        os.chown(self.data_dir, user.pw_uid, user.pw_gid)
        password_file = self.data_dir / "password"
        password_file.write_text(self.password)
        os.chown(password_file, user.pw_uid, user.pw_gid)
        password_file.chmod(0o600)
        subprocess.run(
            [
                *_as_user(),
                _bin("initdb"),
                "-D",
                str(self.data_dir / "pgdata"),
                "-U",
                "postgres",
                f"--pwfile={password_file}",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--encoding=utf8",
            ],
            check=True,
            capture_output=True,
        )
        password_file.unlink()
        with (self.data_dir / "pgdata" / "pg_hba.conf").open("a") as hba:
            hba.write(f"host all all {self.subnet} scram-sha-256\n")
        self._initialised = True

    def start(self) -> PostgresServer:
        if not self._initialised:
            self._initdb()
        self.child = ChildProcess(
            "postgres",
            [
                *self.launcher,
                *_as_user(),
                _bin("postgres"),
                "-D",
                str(self.data_dir / "pgdata"),
                "-c",
                f"listen_addresses={self.host}",
                "-c",
                f"port={PORT}",
                "-c",
                f"unix_socket_directories={self.data_dir / 'pgdata'}",
                "-c",
                "max_connections=200",
                "-c",
                "fsync=off",
            ],
            env=os.environ,
            log_path=self.data_dir / "postgres.log",
        ).start()
        self.child.wait_until(lambda: port_in_use(PORT, self.host), READY_TIMEOUT_S)
        return self

    def stop(self) -> None:
        """A fast shutdown (SIGINT: every connection is cut, as a crash or failover would),
        then SIGKILL to its process group if it hangs."""
        if self.child is not None and self.child.alive():
            self.child.process.send_signal(signal.SIGINT)
            self.child.wait(STOP_GRACE_S)
        if self.child is not None:
            self.child.kill()

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)


def _as_user() -> list[str]:
    """setpriv execs (runuser would fork and stay in between, keeping signals from postgres)."""
    user = pwd.getpwnam(SYSTEM_USER)
    return ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups"]

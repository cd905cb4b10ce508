"""Where `drumline up` keeps its state inside the data dir, and the secrets it keeps there."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

from workers.local_broker import run_dir, write_private


@dataclass(frozen=True)
class Layout:
    """The paths of one data dir."""

    root: Path

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def run(self) -> Path:
        return run_dir(self.root)

    @property
    def redis(self) -> Path:
        return self.root / "redis"

    @property
    def redis_password(self) -> Path:
        return self.root / "redis.password"

    @property
    def flower_password(self) -> Path:
        return self.root / "flower.password"

    @property
    def web_token(self) -> Path:
        return self.root / "web.token"

    @property
    def redis_pid(self) -> Path:
        return self.run / "redis.pid"

    @property
    def lock(self) -> Path:
        return self.root / "up.lock"


def stored_secret(path: Path) -> str:
    """A secret kept in the data dir, readable by its owner only, reused by every restart."""
    if path.exists() and (existing := path.read_text().strip()):
        path.chmod(0o600)
        return existing
    secret = secrets.token_urlsafe(24)
    write_private(path, secret + "\n")
    return secret

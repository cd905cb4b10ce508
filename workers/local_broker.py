"""How `drumline` commands in another terminal find the Redis of a running `drumline up`.

`drumline up` starts Redis on a free port with a generated password. While it runs, it keeps
that URL in a file of the data dir, readable by its owner only, so `drumline deploy` or
`trigger` on the same data dir work with no setup. `DRUMLINE_BROKER_URL`, when set, wins.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from models.db import DEFAULT_DATA_DIR


def broker_file(data_dir: Path) -> Path:
    return data_dir / "run" / "broker-url"


def announce(data_dir: Path, url: str) -> None:
    """Record the embedded broker's URL (it holds the password: mode 0600)."""
    path = broker_file(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(descriptor, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(url + "\n")


def withdraw(data_dir: Path) -> None:
    broker_file(data_dir).unlink(missing_ok=True)


def with_local_broker(environ: Mapping[str, str]) -> Mapping[str, str]:
    """`environ`, plus the running `drumline up`'s broker unless DRUMLINE_BROKER_URL is set."""
    if environ.get("DRUMLINE_BROKER_URL"):
        return environ
    data_dir = Path(environ.get("DRUMLINE_DATA_DIR") or DEFAULT_DATA_DIR)
    try:
        url = broker_file(data_dir).read_text().strip()
    except OSError:
        return environ
    return {**environ, "DRUMLINE_BROKER_URL": url} if url else environ

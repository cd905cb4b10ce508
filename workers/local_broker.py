"""How every drumline process finds the Redis of a `drumline up` running on its data dir.

`drumline up` starts Redis on a free port with a generated password. While it runs, it keeps
that URL in a file of the data dir, readable by its owner only. `Settings.from_env` falls back
to it when DRUMLINE_BROKER_URL is unset or empty, so `drumline deploy` or `trigger` in another
terminal, or a `celery` process, on the same data dir work with no setup.
"""

from __future__ import annotations

import os
from pathlib import Path


def run_dir(data_dir: Path) -> Path:
    """Where `drumline up` keeps what lives only while it runs: pid files, the broker's URL."""
    return data_dir / "run"


def broker_file(data_dir: Path) -> Path:
    return run_dir(data_dir) / "broker-url"


def write_private(path: Path, text: str) -> None:
    """Write `text` to `path`, readable and writable by its owner only (mode 0600), even if the
    file existed with a wider mode: it may hold a password."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(descriptor, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(text)


def announce(data_dir: Path, url: str) -> None:
    """Record the embedded broker's URL (it holds the password: mode 0600)."""
    path = broker_file(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_private(path, url + "\n")


def withdraw(data_dir: Path) -> None:
    broker_file(data_dir).unlink(missing_ok=True)


def announced_broker(data_dir: Path) -> str | None:
    """The broker URL announced by a `drumline up` on `data_dir`, or None if none is."""
    try:
        url = broker_file(data_dir).read_text().strip()
    except OSError:
        return None
    return url or None

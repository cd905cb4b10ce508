"""The data dir of `drumline up`: private to its owner, and left as found when `up` refuses.

It holds the database, Redis's append-only file (every queued message, with its arguments), the
secrets and the logs, so nobody but its owner may read any of it: `up` runs under a umask of
0o077 (everything it and its children create is 0600/0700) and takes the group and other bits
off whatever an earlier start, another umask or a hand-made copy left in the dir.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

PRIVATE_UMASK = 0o077
OWNER_ONLY = 0o700


def make_private(root: Path) -> None:
    """Create `root` if needed and take group and other access off it and everything in it.

    The owner's own bits are kept (a script stays executable); symbolic links are not followed,
    so nothing outside the data dir is changed. Refused, naming the path, if a file cannot be
    changed or the dir cannot be written.
    """
    try:
        root.mkdir(mode=OWNER_ONLY, parents=True, exist_ok=True)
        _owner_only(root)
        for parent, dirs, files in os.walk(root):
            for name in (*dirs, *files):
                _owner_only(Path(parent, name))
        with tempfile.TemporaryFile(dir=root):
            pass
    except OSError as error:
        reason = error.strerror or str(error)
        inside = f" ({error.filename})" if error.filename not in (None, str(root)) else ""
        raise click.ClickException(
            f"cannot make the data dir {root} private and writable{inside}: {reason}"
        ) from None


def _owner_only(path: Path) -> None:
    mode = path.lstat().st_mode
    if not stat.S_ISLNK(mode) and stat.S_IMODE(mode) & ~OWNER_ONLY:
        path.chmod(stat.S_IMODE(mode) & OWNER_ONLY)


@contextmanager
def removed_if_refused(root: Path) -> Iterator[None]:
    """Remove what was created for `root` inside the block if the block refuses to go on.

    Only directories that did not exist before are removed (`root` and any missing parents),
    never one that did: a refused `up` leaves the file system as it found it.
    """
    created = _first_missing(root)
    try:
        yield
    except click.ClickException:
        if created is not None and created.exists():
            shutil.rmtree(created, ignore_errors=True)
        raise


def _first_missing(path: Path) -> Path | None:
    """The outermost of `path` and its parents that does not exist yet, if any."""
    missing = None
    for candidate in (path, *path.parents):
        if candidate.exists() or candidate.is_symlink():
            break
        missing = candidate
    return missing

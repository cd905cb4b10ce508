"""The producers of the example workflows (`examples/*.yaml`) that `drumline up` deploys.

Not built in: `drumline up` adds this module to DRUMLINE_PRODUCER_MODULES whenever it finds the
examples; elsewhere a worker knows them only if that variable names it. They work offline: they
only read and write local files.

Relative paths in params resolve against the worker's working directory, which `drumline up`
sets to its data dir, so the examples write nowhere else unless a definition gives an absolute
path. A relative path may not climb out of that directory with `..`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from workers.registry import ProducerContext, ProducerResult, producer

DEFAULT_MAX_BYTES = 1 << 20


@producer("examples.tail_log")
def tail_log(context: ProducerContext) -> ProducerResult:
    """Counts the lines appended to `params.path` since the last run.

    The byte offset reached is carried in the state, so each run reads only what is new; a file
    that was truncated or replaced (log rotation) is read again from its start. At most
    `params.max_bytes` are read per run, which bounds a run's time; the rest waits for the next.
    Only complete lines are consumed, so a line being written is counted once it ends.
    """
    path = local_path(context.params["path"])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(exist_ok=True)
    stat = path.stat()
    offset = _start_offset(context.state, stat.st_ino, stat.st_size)
    chunk = _read_chunk(path, offset, int(context.params.get("max_bytes", DEFAULT_MAX_BYTES)))
    lines = chunk.split(b"\n")[:-1]
    needle = context.params.get("contains")
    matches = sum(1 for line in lines if str(needle).encode() in line) if needle else len(lines)
    state = {
        "inode": stat.st_ino,
        "offset": offset + len(chunk),
        "lines_total": int(context.state.get("lines_total", 0)) + len(lines),
        "matches_total": int(context.state.get("matches_total", 0)) + matches,
    }
    return ProducerResult(
        result={"lines": len(lines), "matches": matches, "offset": state["offset"]}, state=state
    )


@producer("examples.write_summary")
def write_summary(context: ProducerContext) -> ProducerResult:
    """Writes `<params.directory>/<params.name>.json` describing this run, atomically.

    Readers never see a half-written file: the summary goes to a temporary file that then
    replaces the old one. The run count is carried in the state.
    """
    directory = local_path(context.params.get("directory", "summaries"))
    name = str(context.params.get("name", context.producer))
    if Path(name).name != name or name.startswith("."):
        raise ValueError(f"params.name {name!r} must be a plain file name")
    count = int(context.state.get("count", 0)) + 1
    summary = {
        "workflow": context.workflow,
        "producer": context.producer,
        "scheduled_for": context.scheduled_for.isoformat(),
        "trigger": context.trigger,
        "count": count,
        "note": context.params.get("note"),
    }
    target = directory / f"{name}.json"
    _write_atomically(target, json.dumps(summary, indent=2) + "\n")
    return ProducerResult(
        result={"path": str(target), "count": count}, state={**context.state, "count": count}
    )


def local_path(value: object) -> Path:
    """An absolute path as given, or a relative one that stays inside the working directory."""
    path = Path(str(value))
    if path.is_absolute():
        return path
    base = Path.cwd().resolve()
    resolved = (base / path).resolve()
    if not resolved.is_relative_to(base):
        raise ValueError(f"relative path {str(value)!r} leaves the working directory {base}")
    return resolved


def _start_offset(state: Mapping[str, Any], inode: int, size: int) -> int:
    """Where to resume: the stored offset, or 0 if the file was replaced or truncated."""
    offset = int(state.get("offset", 0))
    if state.get("inode") != inode or offset > size:
        return 0
    return offset


def _read_chunk(path: Path, offset: int, max_bytes: int) -> bytes:
    """Up to `max_bytes` from `offset`, cut after the last newline.

    A chunk without any newline that fills `max_bytes` is returned whole: one line longer than
    the limit must not stall the cursor forever (it is counted when its end arrives).
    """
    with path.open("rb") as file:
        file.seek(offset)
        chunk = file.read(max_bytes)
    end = chunk.rfind(b"\n") + 1
    if end == 0 and len(chunk) == max_bytes:
        return chunk
    return chunk[:end]


def _write_atomically(target: Path, text: str) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.tmp")
    temporary.write_text(text)
    os.replace(temporary, target)

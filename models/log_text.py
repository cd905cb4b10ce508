"""Names and reasons as they may appear in a log line: escaped and bounded.

A workflow or producer name, a task id or a refusal reason can come from a broker message or a
file, so it may hold a newline (a forged second log line), terminal escapes, or megabytes.
Every log line that shows such text shows `loggable(text)` instead.
"""

from __future__ import annotations

MAX_LOGGED_CHARS = 200


def loggable(text: object, limit: int = MAX_LOGGED_CHARS) -> str:
    """`text` with control and non-printable characters escaped (`\\n`, `\\x1b`, ...), cut to
    `limit` characters with a marker saying how much was cut."""
    raw = text if isinstance(text, str) else repr(text)
    head = raw[:limit]
    escaped = (
        head  # the common case, checked in C: nothing to escape
        if head.isprintable()
        else "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in head)
    )
    if len(raw) > limit:
        escaped += f"...(+{len(raw) - limit} chars)"
    return escaped


def last_line(error: str | None) -> str:
    """The last line of an error (a traceback's last line names the exception)."""
    lines = (error or "").strip().splitlines()
    return lines[-1] if lines else ""

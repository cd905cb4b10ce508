"""`JsonTemplate`: a JSON document serialised once, with named slots filled in per message.

Beat sends thousands of messages a second that differ in a handful of fields; `json.dumps` of
the whole envelope each time was the largest entry in its profile. The output is byte for byte
what `json.dumps` (default separators, ASCII) gives for the same document.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from json.encoder import encode_basestring_ascii
from typing import Any

_MARK = "\x00"
_SLOT = re.compile(r'"\\u0000(\w+)"')


def placeholder(name: str) -> str:
    """A placeholder value in a template's document, filled by `fill(name=...)`."""
    return f"{_MARK}{name}"


def json_text(value: str) -> str:
    """A string as JSON text, as `json.dumps` writes it."""
    return str(encode_basestring_ascii(value))


class JsonTemplate:
    def __init__(self, document: Any) -> None:
        parts = _SLOT.split(json.dumps(document))
        # split() alternates literal text and slot names: text, name, text, name, ..., text.
        self._format = "%s".join(literal.replace("%", "%%") for literal in parts[0::2])
        self._names = tuple(parts[1::2])

    def fill(self, values: Mapping[str, str]) -> str:
        """The document with each slot replaced by its value, which must be JSON text."""
        return self._format % tuple([values[name] for name in self._names])

"""The producer registry: the only way a message can name code to run.

A workflow definition says `run: demo.counter`; the worker looks that name up here. Modules are
imported from configuration (`DRUMLINE_PRODUCER_MODULES`) at worker start, never from a path that
arrives in a message.
"""

from __future__ import annotations

import importlib
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from models.definitions import RUN_PATTERN

# The same rule as a definition's `run:` field, so every registered name can be used there.
PRODUCER_NAME = re.compile(RUN_PATTERN)
BUILTIN_MODULES = ("workers.demo_producers",)


@dataclass(frozen=True)
class ProducerContext:
    """What a producer is told about the run it is doing."""

    workflow: str
    producer: str
    scheduled_for: datetime
    trigger: str
    params: Mapping[str, Any]
    state: Mapping[str, Any]
    logger: logging.Logger


@dataclass(frozen=True)
class ProducerResult:
    """A producer's output: a JSON-serialisable result and, optionally, its next state."""

    result: Any = None
    state: dict[str, Any] | None = None


ProducerFunction = Callable[[ProducerContext], Any]


class UnknownProducerError(LookupError):
    def __init__(self, name: str, known: Iterable[str]) -> None:
        names = ", ".join(known) or "none"
        super().__init__(f"no producer named {name!r} is registered (registered: {names})")
        self.name = name


_registry: dict[str, ProducerFunction] = {}


def producer(name: str) -> Callable[[ProducerFunction], ProducerFunction]:
    """Register a function under `name` (e.g. `@producer("prices.poll")`)."""
    if not PRODUCER_NAME.match(name):
        raise ValueError(
            f"invalid producer name {name!r}: use lowercase dotted names like 'team.fetch_prices'"
        )

    def register(function: ProducerFunction) -> ProducerFunction:
        existing = _registry.get(name)
        if existing is not None and existing is not function:
            raise ValueError(
                f"producer {name!r} is registered twice: "
                f"{_qualname(existing)} and {_qualname(function)}"
            )
        _registry[name] = function
        return function

    return register


def load_producer_modules(modules: Iterable[str]) -> None:
    """Import the configured producer modules (and the built-ins), registering their producers."""
    for module in (*BUILTIN_MODULES, *modules):
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise ImportError(
                f"cannot import producer module {module!r} (DRUMLINE_PRODUCER_MODULES): {exc}"
            ) from exc


def get_producer(name: str) -> ProducerFunction:
    load_producer_modules(())
    try:
        return _registry[name]
    except KeyError:
        raise UnknownProducerError(name, registered_names()) from None


def registered_names() -> list[str]:
    load_producer_modules(())
    return sorted(_registry)


def _qualname(function: ProducerFunction) -> str:
    return f"{function.__module__}.{getattr(function, '__qualname__', repr(function))}"

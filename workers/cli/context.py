"""What the CLI commands share: settings, the database, a Celery client, lookups and output."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar

import click
from celery import Celery
from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from models import migrate as migrations
from models.change_store import author_problem
from models.db import make_engine, redact_url
from models.errors import InvalidAuthorError, SettingsError
from models.records import ScheduleRecord, WorkflowRecord
from models.schedule_store import ProducerScheduleStore
from models.workflow_store import WorkflowStore
from workers.client import Drumline
from workers.read_views import json_default
from workers.settings import Settings
from workers.tasks.celery_config import create_app

FC = TypeVar("FC", bound=Callable[..., Any] | click.Command)

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")
actor_option = click.option(
    "--actor", help="Who the change's history entry names (default: user@host of this process)."
)


def _checked_note(ctx: click.Context, param: click.Parameter, note: str | None) -> str | None:
    """A note the history can record, else exit 2 naming --note (before anything is sent)."""
    problem = None if note is None else author_problem("cli", note)
    if problem is not None:
        raise click.BadParameter(problem, param_hint="--note")
    return note


note_option = click.option(
    "--note", callback=_checked_note, help="Why: kept in the change's history entry."
)
logger = logging.getLogger("drumline.cli")

MAX_WAIT_SECONDS = 3600.0


class SecondsType(click.ParamType[float]):
    """A finite number of seconds within bounds: `nan`, `inf` and negatives are refused
    (click's FloatRange lets `nan` through, since every comparison with it is false)."""

    name = "SECONDS"

    def __init__(self, minimum: float, maximum: float) -> None:
        self.minimum, self.maximum = minimum, maximum

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        try:
            seconds = float(value)
        except (TypeError, ValueError):
            self.fail(f"{str(value)[:40]!r} is not a number of seconds", param, ctx)
        if not self.minimum <= seconds <= self.maximum:  # also false for nan
            self.fail(
                f"{str(value)[:40]!r} is not a number of seconds from {self.minimum:g} "
                f"to {self.maximum:g}",
                param,
                ctx,
            )
        return seconds


def timeout_option(default: float, help: str) -> Callable[[FC], FC]:
    """`--timeout S`: how long a command waits, from 0.1 s to an hour."""
    return click.option(
        "--timeout",
        type=SecondsType(0.1, MAX_WAIT_SECONDS),
        default=default,
        show_default=True,
        help=f"{help} (0.1 to {MAX_WAIT_SECONDS:g}).",
    )


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """The settings (of `os.environ` by default); a bad DRUMLINE_* value exits 1 naming it."""
    try:
        settings = Settings.from_env(environ)
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None
    modules = ", ".join(settings.producer_modules) or "none (DRUMLINE_PRODUCER_MODULES is unset)"
    logger.info("producer modules besides the built-ins: %s", modules)
    return settings


@dataclass
class CliContext:
    """Lazily opened resources, so `drumline validate` needs neither Redis nor a database."""

    @cached_property
    def settings(self) -> Settings:
        return load_settings()

    @cached_property
    def engine(self) -> Engine:
        """The database, refused with a clear message if missing, unreachable or not migrated.

        A missing SQLite file is refused before anything is opened: commands that only read
        must never leave a new, empty database (and its directory) behind.
        """
        where = redact_url(self.settings.database_url)
        sqlite_file = _sqlite_file(self.settings.database_url)
        if sqlite_file is not None and not sqlite_file.is_file():
            raise click.ClickException(
                f"no drumline database at {sqlite_file} (data dir {sqlite_file.parent}): run "
                "`drumline up` or `drumline migrate` there first, or point at another data dir "
                "with DRUMLINE_DATA_DIR=DIR (or at a database with DRUMLINE_DATABASE_URL=URL)"
            )
        logger.info("database: %s", where)
        engine = make_engine(self.settings.database_url)
        try:
            current = migrations.current_revision(engine)
        except SQLAlchemyError as exc:
            reason = getattr(exc, "orig", exc)
            raise click.ClickException(f"cannot open the database {where}: {reason}") from None
        if current != migrations.head_revision():
            raise click.ClickException(
                f"the database {where} is at schema revision {current or 'none'}, not "
                f"{migrations.head_revision()}: run `drumline migrate`"
            )
        logger.debug("database %s at schema revision %s", where, current)
        return engine

    @cached_property
    def celery(self) -> Celery:
        logger.info("broker: %s", redact_url(self.settings.broker_url))
        return create_app(self.settings)

    def client(
        self, *, actor: str | None = None, broker: bool = False, database: bool = False
    ) -> Drumline:
        """The Python client over this command's resources: the broker and the (checked)
        database only where the command needs them. A bad `--actor` exits 2 naming it."""
        try:
            return Drumline(
                self.settings,
                app=self.celery if broker else None,
                engine=self.engine if database else None,
                actor=actor,
            )
        except InvalidAuthorError as exc:
            raise click.BadParameter(str(exc), param_hint="--actor") from None


def _sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL (None for another database or an in-memory one)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database).resolve()


pass_context = click.make_pass_decorator(CliContext, ensure=True)


def require_workflow(ctx: CliContext, name: str) -> WorkflowRecord:
    workflow = WorkflowStore(ctx.engine).get(name)
    if workflow is None:
        raise click.ClickException(f"no workflow named {name!r} (see `drumline ls`)")
    return workflow


def require_producer(
    ctx: CliContext, workflow: WorkflowRecord, producer: str, param_hint: str | None = None
) -> ScheduleRecord:
    """The producer's schedule row. An unknown producer exits 1, or 2 as a bad value of the
    option `param_hint` when one is given."""
    row = ProducerScheduleStore(ctx.engine).get(workflow.id, producer)
    if row is None:
        message = f"workflow {workflow.name!r} has no producer {producer!r}"
        if param_hint is not None:
            raise click.BadParameter(message, param_hint=param_hint)
        raise click.ClickException(message)
    return row


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=json_default))


def when(moment: datetime | None, never: str = "-") -> str:
    """A UTC instant for tables: seconds precision, explicit zone."""
    if moment is None:
        return never
    return moment.strftime("%Y-%m-%d %H:%M:%SZ")


def milliseconds(duration_ms: float | None, unit: str = "") -> str:
    """A run's duration, to a tenth of a millisecond; `-` if it has none (yet)."""
    return "-" if duration_ms is None else f"{duration_ms:.1f}{unit}"

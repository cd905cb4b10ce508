"""What every CLI command needs: settings, the database, a Celery client, and output helpers."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any

import click
from celery import Celery
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from models import migrate as migrations
from models.db import make_engine, redact_url
from workers.celery_config import create_app
from workers.cli.local_broker import with_local_broker
from workers.settings import Settings, SettingsError


@dataclass
class CliContext:
    """Lazily opened resources, so `drumline validate` needs neither Redis nor a database."""

    @cached_property
    def settings(self) -> Settings:
        try:
            return Settings.from_env(with_local_broker(os.environ))
        except SettingsError as exc:
            raise click.UsageError(str(exc)) from None

    @cached_property
    def engine(self) -> Engine:
        """The database, refused with a clear message if unreachable or not migrated."""
        engine = make_engine(self.settings.database_url)
        where = redact_url(self.settings.database_url)
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
        return engine

    @cached_property
    def celery(self) -> Celery:
        return create_app(self.settings)


pass_context = click.make_pass_decorator(CliContext, ensure=True)


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=_json_default))


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot serialise {type(value).__name__}")


def when(moment: datetime | None, never: str = "-") -> str:
    """A UTC instant for tables: seconds precision, explicit zone."""
    if moment is None:
        return never
    return moment.strftime("%Y-%m-%d %H:%M:%SZ")

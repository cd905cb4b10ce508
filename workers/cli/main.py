"""`drumline`: the command line. Reads come from the database; changes go through tasks."""

from __future__ import annotations

import logging
import sys

import click

from workers.cli.backfill_command import backfill
from workers.cli.dead_letters_command import dead_letters
from workers.cli.flower_command import flower
from workers.cli.history_commands import diff, history
from workers.cli.lifecycle_commands import delete, deploy, pause, plan, resume, rollback
from workers.cli.migrate import migrate
from workers.cli.monitoring_commands import beats, exporter, health
from workers.cli.read_commands import ls, runs, status
from workers.cli.trigger import cancel, trigger
from workers.cli.up import up
from workers.cli.validate_command import validate
from workers.cli.web_command import web
from workers.cli.why_command import why

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "-v",
    "--verbose",
    count=True,
    help="Log what drumline does (to stderr); -vv: in detail, with the libraries' logs.",
)
def cli(verbose: int) -> None:
    """Run producers on per-producer schedules across Celery workers."""
    configure_logging(verbose)


def configure_logging(verbosity: int) -> None:
    """drumline's loggers (`drumline.*`) at INFO with -v, DEBUG with -vv; other libraries'
    (Alembic, Celery, kombu) stay at WARNING unless -vv, so -v shows drumline's own steps."""
    logging.basicConfig(
        level=logging.INFO if verbosity >= 2 else logging.WARNING, format=LOG_FORMAT
    )
    levels = {0: logging.WARNING, 1: logging.INFO}
    logging.getLogger("drumline").setLevel(levels.get(verbosity, logging.DEBUG))


for command in (
    validate,
    migrate,
    deploy,
    plan,
    pause,
    resume,
    delete,
    rollback,
    history,
    diff,
    ls,
    status,
    runs,
    why,
    trigger,
    cancel,
    backfill,
    dead_letters,
    up,
    flower,
    web,
    beats,
    health,
    exporter,
):
    cli.add_command(command)


def main() -> None:
    sys.exit(cli.main(prog_name="drumline", standalone_mode=True))


if __name__ == "__main__":
    main()

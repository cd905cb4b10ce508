"""`drumline`: the command line. Reads come from the database; changes go through tasks."""

from __future__ import annotations

import logging
import sys

import click

from workers.cli.flower_command import flower
from workers.cli.lifecycle_commands import delete, deploy, pause, resume
from workers.cli.migrate import migrate
from workers.cli.read_commands import ls, runs, status
from workers.cli.trigger import trigger
from workers.cli.up import up
from workers.cli.validate_command import validate


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Log what drumline does.")
def cli(verbose: bool) -> None:
    """Run producers on per-producer schedules across Celery workers."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


for command in (
    validate,
    migrate,
    deploy,
    pause,
    resume,
    delete,
    ls,
    status,
    runs,
    trigger,
    up,
    flower,
):
    cli.add_command(command)


def main() -> None:
    sys.exit(cli.main(prog_name="drumline", standalone_mode=True))


if __name__ == "__main__":
    main()

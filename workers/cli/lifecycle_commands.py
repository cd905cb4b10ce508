"""`drumline deploy | plan | pause | resume | delete | rollback`: a thin layer over the Python
client (`workers/client.py`); every change goes through a lifecycle task."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click

from models.change_store import MAX_VERSION
from models.definitions import WorkflowDefinition, load_definition_files
from models.errors import DefinitionError, DrumlineError
from workers.cli.context import (
    CliContext,
    actor_option,
    json_option,
    note_option,
    pass_context,
    print_json,
    timeout_option,
)
from workers.cli.plan_output import (
    Removal,
    describe_plan,
    describe_removal,
    has_changes,
    removal_view,
    summary_line,
)
from workers.client import Drumline, PendingChange
from workers.read_views import change_view, plan_view
from workers.services.lifecycle import ChangeSummary, DeployPlan

wait_option = click.option(
    "--wait/--no-wait", default=True, show_default=True, help="Wait for the workers' answer."
)
WAIT_S = 30.0
wait_timeout_option = timeout_option(WAIT_S, "Seconds to wait for the answer")
DEFINITION_SUFFIXES = (".yaml", ".yml", ".json")
# `plan` and `--plan` exit with this when there are changes (as `terraform plan
# -detailed-exitcode`), 0 when there are none.
CHANGES_EXIT_CODE = 2
plan_flag = click.option(
    "--plan", "only_plan", is_flag=True, help="Show what would change; change nothing."
)
prune_flag = click.option(
    "--prune",
    is_flag=True,
    help="Delete the workflows in the database that have no file in the DIRs given.",
)
files_argument = click.argument(
    "files", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path)
)


@click.command()
@files_argument
@plan_flag
@prune_flag
@wait_option
@wait_timeout_option
@json_option
@actor_option
@note_option
@pass_context
def deploy(
    ctx: CliContext,
    files: tuple[Path, ...],
    only_plan: bool,
    prune: bool,
    wait: bool,
    timeout: float,
    as_json: bool,
    actor: str | None,
    note: str | None,
) -> None:
    """Create or update workflows from definition FILES (YAML or JSON, or directories of them).

    Nothing is deleted unless --prune is given (with directories only)."""
    definitions = _load(files, ctx, prune)
    if only_plan:
        _show_plan(ctx, definitions, files if prune else None, as_json)
    client = ctx.client(actor=actor, broker=True, database=prune)
    # The deletions are decided before anything is deployed, and run after all deploys did.
    removals = _removals(client, definitions) if prune else []
    ok = deploy_definitions(
        ctx, definitions, wait=wait, timeout=timeout, as_json=as_json, client=client, note=note
    )
    if ok and removals:
        pending = [_send(client.send_delete, r.workflow.name, note) for r in removals]
        ok = _report(pending, wait, timeout, as_json)
    if not ok:
        sys.exit(1)


@click.command()
@files_argument
@prune_flag
@json_option
@pass_context
def plan(ctx: CliContext, files: tuple[Path, ...], prune: bool, as_json: bool) -> None:
    """Show what `drumline deploy FILES` would change, without changing anything.

    Exits 2 when there are changes, 0 when there are none."""
    _show_plan(ctx, _load(files, ctx, prune), files if prune else None, as_json)


def deploy_definitions(
    ctx: CliContext,
    definitions: Sequence[WorkflowDefinition],
    *,
    wait: bool = True,
    timeout: float = WAIT_S,
    as_json: bool = False,
    client: Drumline | None = None,
    note: str | None = None,
) -> bool:
    """Send one deploy task per definition and print each outcome (`drumline deploy`, and
    `drumline up`); whether none failed."""
    client = client or ctx.client(broker=True)
    pending = [_send(client.send_deploy, definition, note) for definition in definitions]
    return _report(pending, wait, timeout, as_json)


def _name_command(
    verb: str,
    send: Callable[[Drumline], Callable[..., PendingChange]],
    *,
    per_producer: bool = False,
) -> click.Command:
    """A lifecycle command on the workflow NAME; with `per_producer`, also on one producer of
    it (`--producer`)."""
    scope = ", or only its producer P (--producer)" if per_producer else ""

    @click.command(name=verb, help=f"{verb.capitalize()} the workflow NAME{scope}.")
    @click.argument("name")
    @wait_option
    @wait_timeout_option
    @json_option
    @actor_option
    @note_option
    @pass_context
    def command(
        ctx: CliContext,
        name: str,
        wait: bool,
        timeout: float,
        as_json: bool,
        actor: str | None,
        note: str | None,
        producer: str | None = None,
    ) -> None:
        client = ctx.client(actor=actor, broker=True)
        target = {"producer": producer} if per_producer else {}
        change = _send(lambda n, note: send(client)(n, note=note, **target), name, note)
        if not _report([change], wait, timeout, as_json):
            sys.exit(1)

    if per_producer:
        command = click.option("--producer", help="Only this producer of the workflow.")(command)
    return command


delete = _name_command("delete", lambda client: client.send_delete)
pause = _name_command("pause", lambda client: client.send_pause, per_producer=True)
resume = _name_command("resume", lambda client: client.send_resume, per_producer=True)


@click.command()
@click.argument("name")
@click.option("--to", "version", type=click.IntRange(1, MAX_VERSION), required=True)
@plan_flag
@wait_option
@wait_timeout_option
@json_option
@actor_option
@note_option
@pass_context
def rollback(
    ctx: CliContext,
    name: str,
    version: int,
    only_plan: bool,
    wait: bool,
    timeout: float,
    as_json: bool,
    actor: str | None,
    note: str | None,
) -> None:
    """Deploy version V (--to) of workflow NAME again, as a new version.

    The workers read that definition from the history; `drumline history NAME` lists them.
    With --plan, show what would change (exit 2 when something would)."""
    if only_plan:
        client = ctx.client(database=True)
        _print_plan([_call(client.plan_rollback, name, version)], [], as_json)
    client = ctx.client(actor=actor, broker=True)
    pending = _send(lambda n, note: client.send_rollback(n, version, note=note), name, note)
    if not _report([pending], wait, timeout, as_json):
        sys.exit(1)


def _load(files: tuple[Path, ...], ctx: CliContext, prune: bool) -> list[WorkflowDefinition]:
    """The definitions of FILES, a directory standing for its .yaml, .yml and .json files.
    Any problem in any file exits 1 with every problem listed."""
    if prune and not all(path.is_dir() for path in files):
        raise click.BadParameter("--prune takes directories only", param_hint="FILES")
    paths: list[Path] = []
    for path in files:
        if path.is_dir():
            paths.extend(sorted(p for p in path.iterdir() if p.suffix in DEFINITION_SUFFIXES))
        else:
            paths.append(path)
    try:
        return load_definition_files(paths, max_timeout=ctx.settings.max_timeout)
    except DefinitionError as error:
        for problem in error.problems:
            click.echo(f"{problem.file}: {problem.path}: {problem.message}", err=True)
        sys.exit(1)


def _removals(client: Drumline, definitions: Sequence[WorkflowDefinition]) -> list[Removal]:
    """The workflows in the database that none of `definitions` names."""
    named = {definition.name for definition in definitions}
    return [
        Removal(workflow, sorted(workflow.definition.get("producers", {})))
        for workflow in client.workflows()
        if workflow.name not in named
    ]


def _show_plan(
    ctx: CliContext,
    definitions: Sequence[WorkflowDefinition],
    pruned: tuple[Path, ...] | None,
    as_json: bool,
) -> None:
    client = ctx.client(database=True)
    plans = [_call(client.plan, definition) for definition in definitions]
    _print_plan(plans, _removals(client, definitions) if pruned is not None else [], as_json)


def _print_plan(plans: Sequence[DeployPlan], removals: Sequence[Removal], as_json: bool) -> None:
    """Print the plans and exit: 2 when anything would change, else 0."""
    changes = has_changes(plans, removals)
    if as_json:
        views = [plan_view(p) for p in plans] + [removal_view(r) for r in removals]
        print_json({"workflows": views, "changes": changes})
    else:
        for p in plans:
            click.echo("\n".join(describe_plan(p)))
        for removal in removals:
            click.echo("\n".join(describe_removal(removal)))
        click.echo(summary_line(plans, removals))
    sys.exit(CHANGES_EXIT_CODE if changes else 0)


def _call(read: Callable[..., DeployPlan], *args: Any) -> DeployPlan:
    """A plan, or exit 1 with the refusal (an invalid definition, no such version)."""
    try:
        return read(*args)
    except DrumlineError as exc:
        raise click.ClickException(str(exc)) from None


def _send(send: Callable[..., PendingChange], target: Any, note: str | None) -> PendingChange:
    try:
        return send(target, note=note)
    except DrumlineError as exc:
        raise click.ClickException(str(exc)) from None


def _report(pending: Sequence[PendingChange], wait: bool, timeout: float, as_json: bool) -> bool:
    """Print each change's summary (or its task id with --no-wait); whether none failed."""
    if not wait:
        for change in pending:
            click.echo(f"{change.workflow}: enqueued as task {change.task_id}")
        return True
    failed = False
    report: list[dict[str, Any]] = []
    for change in pending:
        summary: ChangeSummary | None = None
        error: str | None = None
        try:
            summary = change.wait(timeout)
        except DrumlineError as exc:
            error, failed = str(exc), True
        report.append(change_view(change.workflow, summary, error))
        if as_json:
            continue
        if summary is not None:
            click.echo(describe_summary(summary))
        else:
            click.echo(f"{change.workflow}: failed: {error}", err=True)
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

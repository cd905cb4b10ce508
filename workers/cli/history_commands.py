"""`drumline history | diff`: who changed a workflow, when, why, and what changed."""

from __future__ import annotations

import click
from rich.table import Table
from rich.text import Text

from models.change_store import MAX_VERSION, ChangeRecord
from models.errors import DrumlineError
from models.log_text import loggable
from workers.cli.context import CliContext, json_option, pass_context, print_json, when
from workers.cli.plan_output import describe_diff
from workers.cli.read_commands import console, shown
from workers.read_views import history_view

MAX_HISTORY = 10_000
NOTE_CHARS = 160
versions = click.IntRange(1, MAX_VERSION)


@click.command()
@click.argument("name")
@click.option(
    "--limit",
    type=click.IntRange(1, MAX_HISTORY),
    default=50,
    show_default=True,
    help="Newest entries to show.",
)
@json_option
@pass_context
def history(ctx: CliContext, name: str, limit: int, as_json: bool) -> None:
    """List the changes of workflow NAME, newest first (a deleted workflow's too)."""
    entries = ctx.client(database=True).history(name, limit=limit)
    if not entries:
        raise click.ClickException(f"workflow {name!r} has no history (see `drumline ls`)")
    if as_json:
        print_json(history_view(name, entries))
        return
    table = Table("version", "when (UTC)", "action", "producer", "actor", "what", "note")
    for entry in entries:
        table.add_row(
            str(entry.version),
            when(entry.changed_at),
            entry.action,
            shown(entry.producer or ""),
            shown(entry.actor),
            _what(entry),
            Text(loggable(entry.note or "", NOTE_CHARS)),
        )
    console().print(table)


@click.command()
@click.argument("name")
@click.option(
    "--from",
    "old",
    type=versions,
    help="Older version (default: the newest deploy or rollback before --to).",
)
@click.option(
    "--to", "new", type=versions, help="Newer version (default: the newest deploy or rollback)."
)
@json_option
@pass_context
def diff(ctx: CliContext, name: str, old: int | None, new: int | None, as_json: bool) -> None:
    """Show what changed in workflow NAME between two versions of its history."""
    try:
        since, to, changes = ctx.client(database=True).diff(name, old=old, new=new)
    except DrumlineError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        print_json({"workflow": name, "from": since.version, "to": to.version, **changes.to_json()})
        return
    click.echo(f"{name}: v{since.version} -> v{to.version}")
    lines = describe_diff(changes)
    click.echo("\n".join(lines) if lines else "  no change to the definition")


def _what(entry: ChangeRecord) -> str:
    """The entry's diff in a few words: `+a ~b -c`, or a status change."""
    diff = entry.diff
    if "status" in diff:
        return f"{diff['status']['old']} -> {diff['status']['new']}"
    parts = [f"+{name}" for name in diff.get("added", [])]
    parts += [f"~{name}" for name in diff.get("changed", {})]
    parts += [f"-{name}" for name in diff.get("removed", [])]
    parts += [f"~{key}" for key in diff.get("workflow_fields", {})]
    if "rollback_of" in diff:
        parts.insert(0, f"to v{diff['rollback_of']}:")
    return " ".join(parts) or "-"

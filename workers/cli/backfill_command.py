"""`drumline backfill`: run the past slots of a producer's schedule that have no successful run,
oldest first, once each, at a rate; `--dry-run` shows them, `--cancel ID` withdraws the rest.

The client (`Drumline.backfill`) records the backfill and one pending request per slot; beat
sends them (so the backfill survives any worker's restart), and `drumline status` shows how
far it has come.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import click

from models.backfill_plan import BackfillRange
from models.errors import (
    BackfillRangeError,
    DrumlineError,
    ProducerNotFoundError,
    WorkflowNotFoundError,
)
from workers.cli.context import (
    CliContext,
    actor_option,
    json_option,
    note_option,
    pass_context,
    print_json,
)
from workers.cli.validate_command import InstantType
from workers.client import DEFAULT_BACKFILL_RATE, Drumline, checked_rate
from workers.read_views import backfill_view

SHOWN_SLOTS = 3  # the first and last few slots a dry run lists
MAX_ID = 2**31 - 1  # a backfill id is an INTEGER column


class RateType(click.ParamType[float]):
    """Runs per second: `10/s` or `10`, positive and within the client's bounds."""

    name = "N/s"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        if isinstance(value, float):
            return value
        text = str(value).removesuffix("/s")
        try:
            rate = float(text)
        except ValueError:
            self.fail(f"{value!r} is not a rate like 10/s", param, ctx)
        if not rate > 0:  # nan and negatives
            self.fail(f"{value!r} is not a positive rate like 10/s", param, ctx)
        try:
            return checked_rate(rate)
        except BackfillRangeError as exc:
            self.fail(exc.reason, param, ctx)


@click.command()
@click.argument("name", required=False)
@click.argument("producer", required=False)
@click.option("--from", "start", type=InstantType(), help="The first instant (ISO 8601, a zone).")
@click.option("--to", "end", type=InstantType(), help="The last instant, by now (ISO 8601).")
@click.option("--dry-run", is_flag=True, help="Show the slots it would run; write nothing.")
@click.option(
    "--rate",
    type=RateType(),
    default=DEFAULT_BACKFILL_RATE,
    show_default=True,
    help="Runs a second that beat sends, at most 1000/s.",
)
@click.option("--cancel", "cancel_id", type=click.IntRange(1, MAX_ID), help="Withdraw backfill ID.")
@actor_option
@note_option
@json_option
@pass_context
def backfill(
    ctx: CliContext,
    name: str | None,
    producer: str | None,
    start: datetime | None,
    end: datetime | None,
    dry_run: bool,
    rate: float,
    cancel_id: int | None,
    actor: str | None,
    note: str | None,
    as_json: bool,
) -> None:
    """Run every slot of PRODUCER's schedule in workflow NAME from --from to --to that has no
    successful run yet (none, or a failed or skipped one), oldest first, once each, --rate a
    second. Slots from the producer's next run on are left to beat. `drumline status NAME`
    shows its progress; `drumline backfill --cancel ID` withdraws what has not started."""
    client = ctx.client(actor=actor, database=True)
    if cancel_id is not None:
        _cancel(client, cancel_id, as_json)
        return
    if name is None or producer is None:
        raise click.UsageError("give NAME and PRODUCER (or --cancel ID)")
    for value, option in ((start, "--from"), (end, "--to")):
        if value is None:
            raise click.BadParameter("give an ISO 8601 instant", param_hint=option)
    assert start is not None and end is not None
    try:
        if dry_run:
            slots, unrun = client.plan_backfill(name, producer, start=start, end=end)
            _show_plan(name, producer, slots, unrun, as_json)
            return
        record = client.backfill(name, producer, start=start, end=end, rate=rate, note=note)
    except BackfillRangeError as exc:
        raise click.BadParameter(exc.reason, param_hint=exc.argument) from None
    except WorkflowNotFoundError as exc:
        raise click.BadParameter(exc.message, param_hint="NAME") from None
    except ProducerNotFoundError as exc:
        raise click.BadParameter(exc.message, param_hint="PRODUCER") from None
    except DrumlineError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        print_json(backfill_view(record))
        return
    if not record.requested:
        click.echo(
            f"backfill {record.id}: none of {record.slot_count} slots requested: each has a run"
            " already (done)"
        )
        return
    click.echo(
        f"backfill {record.id}: {record.requested} of {record.slot_count} slots requested, "
        f"sent at {record.rate:g}/s ({record.status}); `drumline status {name}` shows its "
        f"progress, `drumline backfill --cancel {record.id}` withdraws it"
    )


def _cancel(client: Drumline, backfill_id: int, as_json: bool) -> None:
    try:
        record, withdrawn = client.cancel_backfill(backfill_id)
    except DrumlineError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        print_json(backfill_view(record) | {"withdrawn": withdrawn})
    else:
        click.echo(f"cancelled backfill {record.id}: {withdrawn} requests withdrawn")


def _show_plan(
    name: str, producer: str, slots: BackfillRange, unrun: list[datetime], as_json: bool
) -> None:
    """The slots a backfill would run: how many, and the first and last few."""
    if as_json:
        print_json(
            {
                "workflow": name,
                "producer": producer,
                "from": slots.start,
                "to": slots.end,
                "slots": len(slots.slots),
                "would_run": len(unrun),
                "first": unrun[:SHOWN_SLOTS],
                "last": unrun[-SHOWN_SLOTS:],
            }
        )
        return
    click.echo(
        f"would run {len(unrun)} of {len(slots.slots)} slots of {name}.{producer} "
        f"from {slots.start.isoformat()} to {slots.end.isoformat()} (dry run: nothing written)"
    )
    shown = unrun if len(unrun) <= 2 * SHOWN_SLOTS else unrun[:SHOWN_SLOTS]
    for slot in shown:
        click.echo(f"  {slot.isoformat()}")
    if len(unrun) > 2 * SHOWN_SLOTS:
        click.echo(f"  ... {len(unrun) - 2 * SHOWN_SLOTS} more ...")
        for slot in unrun[-SHOWN_SLOTS:]:
            click.echo(f"  {slot.isoformat()}")

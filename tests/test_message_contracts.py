"""The task contracts and the message check of the workers' boundary, without processes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import redis
from click.testing import CliRunner
from kombu.message import Message
from kombu.serialization import prepare_accept_content

from beat.dispatch import RUN_PRODUCER, run_producer_call
from models.definitions import parse_definition
from workers.app import app
from workers.cli.main import cli
from workers.tasks.dead_letters import DEAD_LETTERS_KEY, DeadLetter, DeadLetters
from workers.tasks.message_boundary import check_message
from workers.tasks.message_contracts import CONTRACTS, RefusedMessage, check_arguments

DEPLOY = "drumline.deploy_workflow"
NAME_TASKS = ("drumline.pause_workflow", "drumline.resume_workflow", "drumline.delete_workflow")
INSTANT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
TOKEN = "0" * 32
EMBED = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}


def nested(depth: int) -> Any:
    value: Any = 0
    for _ in range(depth):
        value = [value]
    return value


def run_kwargs(**changes: Any) -> dict[str, Any]:
    """`drumline.run_producer` keyword arguments as beat sends them, with `changes`."""
    _, kwargs = run_producer_call(7, "prices", "poll-exchange", INSTANT, claim_token=TOKEN)
    return {**kwargs, **changes}


def definition(**params: Any) -> dict[str, Any]:
    """A definition's JSON, not validated: the boundary bounds it, the deploy validates it."""
    return {
        "name": "prices",
        "producers": {"poll": {"run": "demo.noop", "interval": "30s", "params": params}},
    }


def sent_by_deploy() -> dict[str, Any]:
    """A definition as `drumline deploy` sends it (validated, then dumped as JSON)."""
    return parse_definition(definition(symbol="EURUSD")).model_dump(mode="json")


def refusal(task: str, args: Any, kwargs: Any) -> str:
    with pytest.raises(RefusedMessage) as caught:
        check_arguments(task, args, kwargs)
    return str(caught.value)


def test_every_task_of_the_app_passes_the_boundary_and_every_drumline_task_has_a_contract() -> None:
    app.loader.import_default_modules()
    assert {task.Strategy for task in app.tasks.values()} == {
        "workers.tasks.message_boundary:bounded_strategy"
    }
    drumline_tasks = {name for name in app.tasks if name.startswith("drumline.")}
    assert drumline_tasks == set(CONTRACTS), "each drumline task needs an entry in CONTRACTS"


@pytest.mark.parametrize(
    ("task", "args", "kwargs"),
    [
        (RUN_PRODUCER, [], run_kwargs()),
        (RUN_PRODUCER, [], run_kwargs(claim_token=None)),
        (RUN_PRODUCER, [], run_kwargs(claim_token=None, trigger_token="t" * 128)),
        (RUN_PRODUCER, [], {k: v for k, v in run_kwargs().items() if k != "claim_token"}),
        (RUN_PRODUCER, [], run_kwargs(scheduled_for="2026-03-01T13:00:00+01:00")),
        (RUN_PRODUCER, [], run_kwargs(workflow_id=2**63 - 1)),
        (DEPLOY, [sent_by_deploy()], {}),
        (DEPLOY, [], {"definition": definition()}),
        (DEPLOY, [definition(deep=nested(32))], {}),
        (DEPLOY, [definition(blob="x" * (1024 * 1024))], {}),
        *((task, ["prices"], {}) for task in NAME_TASKS),
        *((task, [], {"name": "a" * 63}) for task in NAME_TASKS),
    ],
)
def test_messages_that_the_system_sends_are_accepted(
    task: str, args: list[Any], kwargs: dict[str, Any]
) -> None:
    check_arguments(task, args, kwargs)


@pytest.mark.parametrize(
    ("task", "args", "kwargs", "reason"),
    [
        (RUN_PRODUCER, [], run_kwargs(workflow_id=True), "workflow_id: Input should be a valid"),
        (RUN_PRODUCER, [], run_kwargs(workflow_id="7"), "workflow_id: Input should be a valid"),
        (RUN_PRODUCER, [], run_kwargs(workflow_id=7.0), "workflow_id: Input should be a valid"),
        (RUN_PRODUCER, [], run_kwargs(workflow_id=0), "workflow_id: Input should be greater"),
        (RUN_PRODUCER, [], run_kwargs(workflow_id=2**63), "workflow_id: Input should be less"),
        (RUN_PRODUCER, [], run_kwargs(workflow_id=10**40), "integer has more than 30 digits"),
        (RUN_PRODUCER, [], run_kwargs(extra=1), "extra: Extra inputs are not permitted"),
        (RUN_PRODUCER, [7], {}, "takes 0 positional argument(s), not 1"),
        (RUN_PRODUCER, [], run_kwargs(workflow="prices\nFORGED"), "workflow: String should"),
        (RUN_PRODUCER, [], run_kwargs(producer="Poll"), "producer: String should match"),
        (RUN_PRODUCER, [], run_kwargs(producer="p" * 64), "producer: String should match"),
        (RUN_PRODUCER, [], run_kwargs(workflow=7), "workflow: Input should be a valid string"),
        (RUN_PRODUCER, [], run_kwargs(scheduled_for="2026-03-01T12:00:00"), "has no time zone"),
        (RUN_PRODUCER, [], run_kwargs(scheduled_for="tomorrow"), "not an ISO-8601 instant"),
        (RUN_PRODUCER, [], run_kwargs(scheduled_for="9999-12-31T23:59:59-01:00"), "out of range"),
        (RUN_PRODUCER, [], run_kwargs(scheduled_for="2026-03-01T12:00:00+00:00" + " " * 60), "64"),
        (RUN_PRODUCER, [], run_kwargs(scheduled_for="1" * 10_000), "larger than 4096 bytes"),
        (RUN_PRODUCER, [], run_kwargs(scheduled_for=1772366400), "valid string"),
        (RUN_PRODUCER, [], run_kwargs(claim_token=nested(480)), "nested deeper than 40 levels"),
        (RUN_PRODUCER, [], run_kwargs(claim_token=7), "claim_token: Input should be a valid"),
        (RUN_PRODUCER, [], run_kwargs(claim_token=""), "at least 1 character"),
        (RUN_PRODUCER, [], run_kwargs(claim_token="t" * 129), "at most 128 characters"),
        (RUN_PRODUCER, [], run_kwargs(trigger_token="t"), "claim_token or trigger_token, not both"),
        (RUN_PRODUCER, [], run_kwargs(claim_token="a\x00b"), "contains a NUL character"),
        (RUN_PRODUCER, [], {"workflow_id": 7}, "workflow: Field required"),
        (RUN_PRODUCER, {}, {}, "arguments must be a JSON array"),
        (RUN_PRODUCER, [], [], "arguments must be a JSON array"),
        (DEPLOY, [definition(deep=nested(480))], {}, "nested deeper than 40 levels"),
        (DEPLOY, [definition(blob="x" * (2 * 1024 * 1024))], {}, "larger than 2097152 bytes"),
        (DEPLOY, [[definition()]], {}, "definition: Input should be a valid dictionary"),
        (DEPLOY, [definition(), definition()], {}, "takes 1 positional argument(s), not 2"),
        (DEPLOY, [definition()], {"definition": {}}, "given both by position and by name"),
        (DEPLOY, [], {}, "definition: Field required"),
        (DEPLOY, [{"name": float("nan")}], {}, "is not a JSON number"),
        (DEPLOY, [{1: "x"}], {}, "keys must be strings"),
        (NAME_TASKS[0], ["prices\n"], {}, "name: String should match"),
        (NAME_TASKS[1], [1], {}, "name: Input should be a valid string"),
        (NAME_TASKS[2], ["prices"], {"force": True}, "force: Extra inputs are not permitted"),
        ("celery.accumulate", [nested(480)], {}, "accepts no message for this task"),
        ("drumline.unknown", [], {}, "accepts no message for this task"),
    ],
)
def test_messages_outside_the_contract_are_refused_naming_the_problem(
    task: str, args: Any, kwargs: Any, reason: str
) -> None:
    assert reason in refusal(task, args, kwargs)


def test_a_refusal_reason_is_one_bounded_line_without_the_input() -> None:
    secret = "s3cret-value"
    reason = refusal(RUN_PRODUCER, [], run_kwargs(**{f"k{i}": secret for i in range(10)}))
    assert secret not in reason
    assert reason.endswith("(and 7 more)")
    assert len(reason) < 300


def message(
    body: bytes | str,
    *,
    headers: dict[str, Any] | None = None,
    content_type: str = "application/json",
) -> Message:
    """A task message as the worker's consumer receives it."""
    raw = body.encode() if isinstance(body, str) else body
    return Message(
        body=raw,
        content_type=content_type,
        content_encoding="utf-8",
        headers={"task": RUN_PRODUCER, "id": "t-1", "lang": "py", **(headers or {})},
        accept=prepare_accept_content(["json"]),
    )


def body_of(args: Any, kwargs: Any, embed: Any = EMBED) -> str:
    return json.dumps([args, kwargs, embed])


def test_a_well_formed_message_passes_and_its_body_is_decoded_once() -> None:
    received = message(body_of([], run_kwargs()))
    check_message(RUN_PRODUCER, received, None)
    assert received.payload == [[], run_kwargs(), EMBED]  # kombu's cache, read by Celery


def test_the_argument_reprs_that_celery_logs_are_escaped_and_bounded() -> None:
    # Celery's saferepr keeps a newline of a multi-line description as it is.
    received = message(
        body_of([{"description": "two\nlines"}], {}),
        headers={"task": DEPLOY, "argsrepr": "({'description': 'two\nlines'},)"},
    )
    received.headers["kwargsrepr"] = "{" + "x" * 5000 + "}"
    check_message(DEPLOY, received, None)
    assert received.headers["argsrepr"] == "({'description': 'two\\nlines'},)"
    assert received.headers["kwargsrepr"].endswith("...(+3978 chars)")


@pytest.mark.parametrize(
    ("received", "body", "reason"),
    [
        (message(body_of([], run_kwargs())), {"task": RUN_PRODUCER}, "not a task message of"),
        (message(body_of([], run_kwargs()), headers={"id": None}), None, "the task id must be"),
        (message(body_of([], run_kwargs()), headers={"id": "i" * 256}), None, "task id must"),
        (message(body_of([], run_kwargs()), headers={"x": nested(480)}), None, "deeper than 8"),
        (message(body_of([], run_kwargs()), headers={"x": "y" * 20_000}), None, "16384 bytes"),
        (message(body_of([], run_kwargs()), headers={"id": "t-1\nFORGED"}), None, "printable"),
        (message(body_of([], run_kwargs()), headers={"argsrepr": ["()"]}), None, "a string"),
        (message("[[], {}, {" + "[" * 100_000 + "]" * 100_000 + "}]"), None, "body is 200012"),
        (message("[[], " + "[" * 5000 + "]" * 5000 + ", {}]"), None, "cannot be decoded"),
        (message("[[], {"), None, "body cannot be decoded"),
        (message(b"\x80\x04K\x01.", content_type="application/x-python-serialize"), None, "pickle"),
        (message(json.dumps({"args": [], "kwargs": {}})), None, "[args, kwargs, embed]"),
        (message(body_of([], run_kwargs(), {**EMBED, "callbacks": [{}]})), None, "callbacks"),
        (message(body_of([], run_kwargs(), {"link": None})), None, "no callbacks"),
        (message(body_of([], run_kwargs(workflow_id=True))), None, "workflow_id: Input should"),
    ],
)
def test_malformed_messages_are_refused_before_anything_else(
    received: Message, body: Any, reason: str
) -> None:
    with pytest.raises(RefusedMessage) as caught:
        check_message(RUN_PRODUCER, received, body)
    assert reason in str(caught.value)


def test_a_deploy_body_that_json_cannot_decode_is_refused_not_raised() -> None:
    deep = "[[" + "[" * 100_000 + "]" * 100_000 + "], {}, {}]"
    received = message(deep, headers={"task": DEPLOY})
    with pytest.raises(RefusedMessage, match="body cannot be decoded: maximum recursion depth"):
        check_message(DEPLOY, received, None)


@pytest.fixture
def letters(redis_client: redis.Redis) -> Iterator[DeadLetters]:
    yield DeadLetters(redis_client, max_count=3)


def letter(task_id: str, reason: str = "bad", body: bytes | str | None = b"{}") -> DeadLetter:
    return DeadLetter.of(
        task_id=task_id,
        task=RUN_PRODUCER,
        queue="producers",
        reason=reason,
        received_at="2026-03-01T12:00:00+00:00",
        body=body,
    )


def test_dead_letters_keep_the_newest_and_bound_every_field(letters: DeadLetters) -> None:
    for i in range(5):
        letters.push(letter(f"t-{i}"))
    letters.push(letter("big", reason="r" * 5000, body="é" * 10_000))
    latest = letters.latest(10)
    assert [entry["task_id"] for entry in latest] == ["big", "t-4", "t-3"]
    assert (len(latest[0]["reason"]), latest[0]["body_bytes"]) == (1000, 20_000)
    assert len(latest[0]["body_excerpt"]) <= 500


def test_drumline_dead_letters_lists_them(redis_url: str, redis_client: redis.Redis) -> None:
    letters = DeadLetters(redis_client)
    letters.push(letter("t-old"))
    letters.push(letter("t-new\nFORGED", reason="workflow_id: Input should be a valid integer"))
    redis_client.lpush(DEAD_LETTERS_KEY, b"not json")
    env = {"DRUMLINE_BROKER_URL": redis_url, "DRUMLINE_REDIS_URL": redis_url}
    runner = CliRunner()

    listed = runner.invoke(cli, ["dead-letters", "--json", "--limit", "2"], env=env)
    assert listed.exit_code == 0, listed.output
    entries = json.loads(listed.output)["dead_letters"]
    assert entries[0] == {"unreadable": "not json"}
    assert entries[1]["task_id"] == "t-new\nFORGED"
    assert len(entries) == 2

    table = runner.invoke(cli, ["dead-letters"], env=env)
    assert table.exit_code == 0, table.output
    assert "t-new\\nFORGED" in table.output and "t-old" in table.output
    assert "workflow_id: Input should be a valid integer" in table.output

    down = runner.invoke(
        cli, ["dead-letters"], env={**env, "DRUMLINE_REDIS_URL": "redis://127.0.0.1:1/0"}
    )
    assert down.exit_code == 1
    assert "cannot read the dead letters from Redis at redis://127.0.0.1:1/0" in down.output

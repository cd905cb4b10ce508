"""Issue 10's corpus of malformed definitions (tests/malformed_definitions.py): every one is
refused by `drumline validate --json` naming its file, in a bounded time, never with a
traceback; a sample of them through the real deploy lifecycle writes nothing."""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any

import pytest
import redis
import yaml
from click.testing import CliRunner
from sqlalchemy import Engine

from models.errors import InvalidDefinitionError
from models.schedule_store import ProducerScheduleStore
from models.workflow_store import WorkflowStore
from tests.databases import table_dump
from tests.malformed_definitions import LEASE_SECONDS, write_corpus
from workers.cli.validate_command import validate
from workers.services.lifecycle import Lifecycle
from workers.services.locks import WorkflowLocks

PER_FILE_SECONDS = 3.0
ALL_FILES_SECONDS = 120.0


@pytest.fixture(autouse=True)
def _environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("DRUMLINE_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("DRUMLINE_LEASE_SECONDS", str(LEASE_SECONDS))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, Path]]:
    return write_corpus(tmp_path_factory.mktemp("corpus"))


def test_the_corpus_covers_every_class(corpus: list[tuple[str, Path]]) -> None:
    counts = collections.Counter(kind for kind, _ in corpus)
    assert len(corpus) >= 300
    assert set(counts) == {
        "size", "not-regular", "depth", "producer-count", "yaml-alias", "yaml-type", "nan",
        "keys", "text", "huge-int", "cron", "null", "timeout", "timezone",
    }  # fmt: skip


def test_one_validate_process_refuses_every_file_naming_each(
    corpus: list[tuple[str, Path]],
) -> None:
    env = {**os.environ, "DRUMLINE_LEASE_SECONDS": str(LEASE_SECONDS)}
    command = [sys.executable, "-m", "workers.cli.main", "validate", "--json"]
    started = time.monotonic()
    done = subprocess.run(
        [*command, *(str(path) for _, path in corpus)],
        capture_output=True,
        text=True,
        timeout=ALL_FILES_SECONDS,
        env=env,
        check=False,
    )
    elapsed = time.monotonic() - started
    assert done.returncode == 1, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    errors = json.loads(done.stdout)["errors"]
    named = {error["file"] for error in errors}
    assert [str(path) for _, path in corpus if str(path) not in named] == []
    assert all(error["message"] for error in errors)
    print(
        f"\nvalidate --json over {len(corpus)} files: exit 1, {len(errors)} errors, {elapsed:.1f}s"
    )


class _Hung(Exception):
    pass


def _alarm(signum: int, frame: FrameType | None) -> None:
    raise _Hung


def test_each_file_is_refused_in_process_in_bounded_time(
    corpus: list[tuple[str, Path]],
) -> None:
    """Outcomes per file: refused (exit 1, JSON errors naming it), accepted, crashed, hung."""
    runner = CliRunner()
    outcomes: collections.Counter[str] = collections.Counter()
    wrong: list[str] = []
    previous = signal.signal(signal.SIGALRM, _alarm)
    try:
        for kind, path in corpus:
            outcome, detail = _validate_one(runner, path)
            outcomes[outcome] += 1
            if outcome != "refused":
                wrong.append(f"{kind} {path.name}: {outcome} {detail}")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    print(f"\ncorpus of {len(corpus)}: {dict(outcomes)}")
    assert wrong == []
    assert outcomes == {"refused": len(corpus)}


def _validate_one(runner: CliRunner, path: Path) -> tuple[str, str]:
    started = time.monotonic()
    signal.setitimer(signal.ITIMER_REAL, PER_FILE_SECONDS * 3)
    try:
        result = runner.invoke(validate, ["--json", str(path)])
    except _Hung:
        return "hung", ""
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    elapsed = time.monotonic() - started
    if result.exit_code == 0:
        return "accepted", result.stdout[:200]
    if not isinstance(result.exception, SystemExit) or result.exit_code != 1:
        return "crashed", repr(result.exception)[:300]
    if elapsed > PER_FILE_SECONDS:
        return "hung", f"{elapsed:.1f}s"
    errors = json.loads(result.stdout)["errors"]
    if not errors or any(error["file"] != str(path) for error in errors):
        return "crashed", f"errors do not name the file: {errors}"
    return "refused", ""


# --- a sample through the real deploy lifecycle ---------------------------------------------

SAMPLE = [
    "yaml-alias/laughs-9x10.yaml",
    "yaml-alias/recursive.yaml",
    "depth/params-500.json",
    "producer-count/producers-1001.json",
    "yaml-type/params-date.yaml",
    "nan/json-NaN.json",
    "keys/params-int-and-str.yaml",
    "text/nul-value.json",
    "text/surrogate-key.json",
    "huge-int/params-4300.json",
    "cron/cron-0.yaml",
    "cron/cron-9.json",
    "timeout/timeout-1d.yaml",
    "timezone/zone-0.yaml",
    "timezone/zone-6.json",
]


def _raw(path: Path) -> Any:
    """The value a deploy task would be handed: parsed without drumline's checks."""
    text = path.read_text(encoding="utf-8", errors="surrogatepass")
    if path.suffix == ".json":
        return json.loads(text)
    return yaml.load(text, Loader=yaml.SafeLoader)


@pytest.fixture
def lifecycle(engine: Engine, redis_client: redis.Redis) -> Iterator[Lifecycle]:
    locks = WorkflowLocks(redis_client, timeout=timedelta(seconds=5), wait=timedelta(seconds=1))
    yield Lifecycle(engine, locks, max_timeout=timedelta(seconds=LEASE_SECONDS * 0.8))


def test_a_sample_through_deploy_writes_nothing(
    lifecycle: Lifecycle, engine: Engine, corpus: list[tuple[str, Path]]
) -> None:
    root = corpus[0][1].parent.parent
    lifecycle.deploy({"name": "wf", "producers": {"p": {"run": "demo.noop", "interval": "1m"}}})
    before = table_dump(engine)
    for name in SAMPLE:
        data = _raw(root / name)
        started = time.monotonic()
        with pytest.raises(InvalidDefinitionError) as caught:
            lifecycle.deploy(data)
        assert time.monotonic() - started < PER_FILE_SECONDS, name
        assert caught.value.details["errors"], name
        assert "\n" not in str(caught.value)
    assert table_dump(engine) == before


# --- crons whose every match is in a skipped hour: accepted, shown as never running ---------

NEVER = """\
name: dst-never
producers:
  new-york:
    run: demo.noop
    cron: "* 2 * 3 0#2"
    timezone: America/New_York
  berlin:
    run: demo.noop
    cron: "* 2 * 3 L0"
    timezone: Europe/Berlin
"""


def test_a_cron_that_only_matches_skipped_hours_validates_as_exhausted(tmp_path: Path) -> None:
    path = tmp_path / "never.yaml"
    path.write_text(NEVER, encoding="utf-8")
    started = time.monotonic()
    result = CliRunner().invoke(validate, ["--json", str(path), "--after", "2026-01-01T00:00:00Z"])
    assert time.monotonic() - started < PER_FILE_SECONDS
    assert result.exit_code == 0, result.output
    producers = json.loads(result.stdout)["workflows"][0]["producers"]
    assert [(p["name"], p["next"]) for p in producers] == [("new-york", []), ("berlin", [])]
    assert all("exhausted (never runs again)" in p["schedule"] for p in producers)


def test_deploying_such_a_cron_is_fast_and_stores_no_next_run(
    lifecycle: Lifecycle, engine: Engine
) -> None:
    data = yaml.safe_load(NEVER)
    lifecycle.now = lambda: datetime(2026, 1, 1, tzinfo=UTC)
    started = time.monotonic()
    assert lifecycle.deploy(data).to_json()["added"] == ["berlin", "new-york"]
    assert time.monotonic() - started < PER_FILE_SECONDS
    workflow = WorkflowStore(engine).get("dst-never")
    assert workflow is not None
    rows = ProducerScheduleStore(engine).list(workflow.id)
    assert [row.next_run_at for row in rows] == [None, None]

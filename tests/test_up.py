"""`drumline up` as a user runs it, plus the parts it is built from.

The system tests start `drumline up` as a subprocess on a temporary data dir and read what ran
straight from its SQLite file; a process is a leftover if its command line, working directory or
environment points at that data dir.
"""

from __future__ import annotations

import base64
import itertools
import json
import logging
import math
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psutil
import pytest
from click.testing import CliRunner
from rich.console import Console
from sqlalchemy import Engine

from models import migrate
from models.claims import BeatClaims
from models.db import default_database_url, make_engine
from models.definitions import load_definition_files
from models.records import RunRecord, ScheduleRecord, SlotOutcome
from models.run_path import RunPath
from models.run_store import RunStore
from models.schedule_store import ProducerScheduleStore
from models.schedules import Schedule
from models.types import utc_now
from models.workflow_store import WorkflowStore
from tests.databases import new_workflow, schedule_spec
from tests.e2e import wait_until
from workers.cli import live_view
from workers.cli.context import when
from workers.cli.main import cli
from workers.local.child import ChildExitedError
from workers.local.layout import Layout, stored_secret
from workers.local.orphans import stop_orphaned_redis
from workers.local.redis_server import RedisServer, free_port
from workers.local.stack import REPO_ROOT, find_examples
from workers.local.supervisor import Interrupts, RestartPolicy, Supervisor
from workers.registry import ProducerContext, ProducerResult, get_producer, registered_names

# Without the web view unless a test asks (`--web --web-port P`): its default port is fixed.
UP = [sys.executable, "-c", "from workers.cli.main import main; main()", "up", "--no-web"]
EXAMPLES = sorted((REPO_ROOT / "examples").glob("*.yaml"))
FIRST_RUNS_WITHIN_S = 20
STOP_WITHIN_S = 15
# How long the system stays down between the two starts: long enough to miss several slots.
DOWN_S = 8
WINDOW_S = 12


@dataclass
class Up:
    """A running `drumline up` whose output goes to a file."""

    process: subprocess.Popen[bytes]
    output: Path
    data_dir: Path
    started: datetime

    def text(self) -> str:
        return self.output.read_text(errors="replace")

    def wait_for_output(self, text: str, timeout: float) -> None:
        def shown() -> bool:
            assert self.process.poll() is None, f"drumline up exited:\n{self.text()}"
            return text in self.text()

        wait_until(shown, timeout, f"{text!r} in the output of drumline up")

    def interrupt(self, signum: int) -> tuple[int, float]:
        """Ctrl-C (or SIGTERM); returns the exit code and how long the shutdown took."""
        began = time.monotonic()
        self.process.send_signal(signum)
        try:
            code = self.process.wait(STOP_WITHIN_S + 5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise
        return code, time.monotonic() - began


def up_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("DRUMLINE_", "FLOWER_"))}


StartUp = Callable[..., Up]


@pytest.fixture
def start_up(tmp_path: Path) -> Iterator[StartUp]:
    """Start `drumline up` (from the repository root, as a user would); kill leftovers after."""
    started: list[Up] = []

    def start(data_dir: Path, *args: str) -> Up:
        output = tmp_path / f"up-{len(started)}.out"
        with output.open("wb") as sink:
            process = subprocess.Popen(
                [*UP, "--data-dir", str(data_dir), *args],
                cwd=REPO_ROOT,
                env=up_env(),
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        started.append(Up(process, output, data_dir, utc_now()))
        return started[-1]

    yield start
    for up in started:
        if up.process.poll() is None:
            up.process.kill()
            up.process.wait()
        for leftover in leftovers(up.data_dir):
            leftover.kill()


def run_up(tmp_path: Path, *args: str) -> tuple[int, str]:
    """Run `drumline up` expecting it to give up on its own."""
    result = subprocess.run(
        [*UP, *args], cwd=REPO_ROOT, env=up_env(), capture_output=True, timeout=60, check=False
    )
    return result.returncode, (result.stdout + result.stderr).decode(errors="replace")


def drumline(
    data_dir: Path, *args: str, broker: str | None = None
) -> subprocess.CompletedProcess[str]:
    """A `drumline` command run as from another terminal on `data_dir`, with no other
    DRUMLINE_* variable than `broker` if given."""
    env = {**up_env(), "DRUMLINE_DATA_DIR": str(data_dir)}
    if broker is not None:
        env["DRUMLINE_BROKER_URL"] = broker
    command = [sys.executable, "-c", "from workers.cli.main import main; main()", *args]
    return subprocess.run(
        command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60, check=False
    )


def leftovers(data_dir: Path) -> list[psutil.Process]:
    """Processes that belong to the system started on `data_dir`."""
    marker = str(data_dir.resolve())
    found = []
    for process in psutil.process_iter(["cmdline", "cwd", "environ", "status"]):
        info = process.info
        if process.pid == os.getpid() or info["status"] == psutil.STATUS_ZOMBIE:
            continue
        if (
            marker in " ".join(info["cmdline"] or ())
            or (info["cwd"] or "").startswith(marker)
            or (info["environ"] or {}).get("DRUMLINE_DATA_DIR") == marker
        ):
            found.append(process)
    return found


def runs(data_dir: Path) -> dict[str, list[RunRecord]]:
    """Every run committed on `data_dir`, by `workflow/producer`."""
    engine = make_engine(default_database_url(data_dir))
    try:
        found: dict[str, list[RunRecord]] = {}
        for workflow in WorkflowStore(engine).list():
            for run in RunStore(engine).list(workflow.id):
                found.setdefault(f"{workflow.name}/{run.producer_name}", []).append(run)
        return found
    finally:
        engine.dispose()


def schedules(data_dir: Path) -> dict[str, ScheduleRecord]:
    engine = make_engine(default_database_url(data_dir))
    try:
        names = {w.id: w.name for w in WorkflowStore(engine).list()}
        rows = ProducerScheduleStore(engine).list()
        return {f"{names[row.workflow_id]}/{row.producer_name}": row for row in rows}
    finally:
        engine.dispose()


def frequent_examples() -> dict[str, timedelta]:
    """The example producers that run at least every 5 s, with their spacing."""
    spacings = {
        f"{definition.name}/{name}": spacing(producer.schedule)
        for definition in load_definition_files(EXAMPLES)
        for name, producer in definition.producers.items()
    }
    return {name: gap for name, gap in spacings.items() if gap <= timedelta(seconds=5)}


def spacing(schedule: Schedule | None) -> timedelta:
    """The time between a schedule's next two slots (forever for a manual producer)."""
    first = schedule.next_after(utc_now()) if schedule else None
    second = schedule.next_after(first, anchor=first) if schedule and first else None
    return second - first if first and second else timedelta.max


def assert_stopped_cleanly(up: Up, signum: int) -> None:
    code, took = up.interrupt(signum)
    assert code == 0, up.text()
    assert took < STOP_WITHIN_S
    assert "stopped" in up.text()
    wait_until(lambda: not leftovers(up.data_dir), 2, "no leftover process")


def flower_status(port: int, password: str | None) -> int:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/")
    if password is not None:
        token = base64.b64encode(f"drumline:{password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code


def test_up_runs_the_examples_stops_cleanly_and_resumes_without_a_burst(
    tmp_path: Path, start_up: StartUp
) -> None:
    data = tmp_path / "data"
    first = start_up(data, "--no-flower")
    expected = frequent_examples()
    assert expected, "the examples should have frequent schedules"
    deadline = time.monotonic() + FIRST_RUNS_WITHIN_S
    first.wait_for_output("beat1 ready", FIRST_RUNS_WITHIN_S)  # the database is migrated
    wait_until(
        lambda: expected.keys() <= runs(data).keys(),
        deadline - time.monotonic(),
        f"runs of {sorted(expected)}",
    )
    output = first.text()
    for progress in ("redis ready on 127.0.0.1:", "migrated", "worker1 ready", "beat1 ready"):
        assert progress in output
    first.wait_for_output("runs in the last minute", 10)
    # Another terminal, nothing set but the data dir: the CLI finds up's Redis by itself.
    broker_file = data / "run" / "broker-url"
    assert broker_file.stat().st_mode & 0o777 == 0o600
    triggered = drumline(data, "trigger", "example-summaries", "on-demand", "--wait")
    assert triggered.returncode == 0, triggered.stderr
    assert "succeeded in" in triggered.stdout
    assert_stopped_cleanly(first, signal.SIGINT)
    assert not broker_file.exists()
    nowhere = f"redis://:secret@127.0.0.1:{free_port()}/0"
    refused = drumline(data, "trigger", "example-summaries", "on-demand", broker=nowhere)
    assert refused.returncode == 1
    assert f"cannot reach the broker at {nowhere.replace('secret', '***')}" in refused.stderr
    assert "secret" not in refused.stderr

    password = (data / "redis.password").read_text().strip()
    assert (data / "redis.password").stat().st_mode & 0o777 == 0o600
    assert password not in first.text()
    for log in (data / "logs").iterdir():
        assert password not in log.read_text(errors="replace"), log
    tail = schedules(data)["example-log-tail/count-finished-tasks"]
    assert tail.state["offset"] > 0  # the cursor reached is kept between runs
    stopped_at = utc_now()

    time.sleep(DOWN_S)
    port = free_port()
    second = start_up(data, "--flower-port", str(port))
    second.wait_for_output("flower ready", 30)
    flower_password = (data / "flower.password").read_text().strip()
    # Piped, `up` names the password's file instead of printing it: its output is a log.
    assert f"password in {data / 'flower.password'}" in second.text()
    assert flower_password not in second.text()
    assert (flower_status(port, None), flower_status(port, flower_password)) == (401, 200)
    refused_code, message = run_up(tmp_path, "--no-flower", "--data-dir", str(data))
    assert refused_code != 0 and "another `drumline up` is running" in message
    # Every frequent producer runs again after the restart (however loaded the machine), then
    # the window is at least WINDOW_S long so that a burst of missed slots would show.
    wait_until(
        lambda: all(
            any(r.started_at >= second.started for r in runs(data).get(name, []))
            for name in expected
        ),
        FIRST_RUNS_WITHIN_S + WINDOW_S,
        f"runs of {sorted(expected)} after the restart",
    )
    time.sleep(max(0.0, WINDOW_S - (utc_now() - second.started).total_seconds()))
    assert_stopped_cleanly(second, signal.SIGTERM)
    assert (data / "redis.password").read_text().strip() == password

    for name, history in runs(data).items():
        if name not in expected:
            continue
        window = [run for run in history if run.started_at >= second.started]
        missed = [run for run in window if run.scheduled_for < second.started]
        assert len(missed) <= 1, f"{name}: missed slots were run one by one: {missed}"
        assert not [r for r in history if stopped_at < r.started_at < second.started]
        seconds = (max(r.started_at for r in window) - second.started).total_seconds()
        slots = math.floor(seconds / expected[name].total_seconds()) + 1
        assert len(window) <= slots + 1, f"{name}: {len(window)} runs for {slots} slots"


def test_up_restarts_a_worker_that_died_and_keeps_running(
    tmp_path: Path, start_up: StartUp
) -> None:
    data = tmp_path / "data"
    up = start_up(data, "--no-flower")
    up.wait_for_output("runs in the last minute", FIRST_RUNS_WITHIN_S + 30)  # the view is up
    worker = next(
        p for p in leftovers(data) if "--hostname=worker1@%h" in " ".join(p.info["cmdline"])
    )
    os.killpg(worker.pid, signal.SIGKILL)
    killed_at = utc_now()
    up.wait_for_output("worker1 restarted (pid", 20)
    assert "worker1 was killed by SIGKILL" in up.text()
    assert "restarting it in 1s" in up.text()
    # The restarted worker runs the schedules again.
    wait_until(
        lambda: any(r.started_at > killed_at for h in runs(data).values() for r in h),
        FIRST_RUNS_WITHIN_S,
        "a run after the restart",
    )
    assert_stopped_cleanly(up, signal.SIGINT)


def test_a_broken_definition_starts_nothing(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: broken\nproducers:\n  p:\n    run: demo.noop\n    interval: 0s\n")
    data = tmp_path / "data"
    code, output = run_up(tmp_path, "--no-flower", "--data-dir", str(data), "--deploy", str(broken))
    assert code != 0
    assert "invalid definition" in output
    assert f"{broken}: producers.p.interval" in output
    assert not data.exists()  # refused before even the data dir was made
    assert not leftovers(data)


def test_an_unknown_producer_is_refused_before_starting(tmp_path: Path) -> None:
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("name: unknown\nproducers:\n  p:\n    run: nobody.home\n")
    data = tmp_path / "data"
    code, output = run_up(tmp_path, "--data-dir", str(data), "--deploy", str(unknown))
    assert code != 0
    assert "no producer named 'nobody.home'" in output
    assert not data.exists()


def test_an_unwritable_data_dir_is_refused(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    code, output = run_up(tmp_path, "--no-flower", "--data-dir", str(blocker / "data"))
    assert code != 0
    assert f"cannot make the data dir {blocker / 'data'} private and writable" in output


def test_a_port_in_use_is_refused_before_starting(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for option in ("--flower-port", "--redis-port"):
            code, output = run_up(tmp_path, "--data-dir", str(data), option, str(port))
            assert code != 0
            assert f"port {port} on 127.0.0.1 is already in use" in output
            assert option in output
    assert not data.exists()  # refused before anything was left behind
    assert not leftovers(data)


def test_a_refused_up_keeps_a_data_dir_that_existed(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "notes.txt").write_text("mine")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, output = run_up(tmp_path, "--data-dir", str(data), "--flower-port", str(port))
    assert code != 0 and f"port {port} on 127.0.0.1 is already in use" in output
    assert (data / "notes.txt").read_text() == "mine"
    assert not leftovers(data)


def modes(root: Path) -> dict[str, int]:
    """The permission bits of `root` and everything in it, by path relative to `root`."""
    found = {".": root.stat().st_mode & 0o777}
    for path in root.rglob("*"):
        if not path.is_symlink():
            found[str(path.relative_to(root))] = path.stat().st_mode & 0o777
    return found


def assert_private(root: Path) -> None:
    """Directories 0700 and files 0600, among them the database with its WAL and shared
    memory, Redis's append-only file, the secrets, the logs and run/."""
    found = modes(root)
    loose = {
        path: oct(mode)
        for path, mode in found.items()
        if mode != (0o700 if (root / path).is_dir() else 0o600)
    }
    assert not loose, loose
    names = {Path(path).name for path in found}
    expected = {"drumline.db", "drumline.db-wal", "drumline.db-shm", "redis.password"}
    expected |= {"flower.password", "up.lock", "broker-url", "redis.pid", "redis.log"}
    expected |= {"worker1.log", "beat1.log", "flower.log"}
    assert expected <= names, sorted(expected - names)
    assert any(name.endswith(".aof") for name in names), sorted(names)


def test_up_keeps_the_data_dir_private_even_when_it_was_loose(
    tmp_path: Path, start_up: StartUp
) -> None:
    """A new data dir is private under any umask; a loose existing one is made private at start;
    a clean stop leaves no pid file behind."""
    data = tmp_path / "data"
    for start in ("new", "loose"):
        up = start_up(data, "--flower-port", str(free_port()))
        up.wait_for_output("runs in the last minute", 60)
        assert_private(data)
        assert_stopped_cleanly(up, signal.SIGINT)
        assert not (data / "run" / "redis.pid").exists()
        assert not list((data / "run").glob("*.pid"))
        if start == "new":
            (data / "run" / "redis.pid").write_text("999999\n")  # a stale one, from a crash
            for path in [data, *data.rglob("*")]:  # as a umask of 0o022 or a copy leaves them
                path.chmod(0o755 if path.is_dir() else 0o644)
            assert set(modes(data).values()) == {0o755, 0o644}


def test_the_examples_validate_together_and_show_each_kind_of_schedule() -> None:
    assert find_examples(REPO_ROOT) == REPO_ROOT / "examples"
    import workers.example_producers  # noqa: F401 - registers the example producers

    definitions = load_definition_files(EXAMPLES, known_producers=registered_names())
    producers = [p for d in definitions for p in d.producers.values()]
    assert any(p.interval for p in producers)
    assert any(p.cron and p.timezone not in (None, "UTC") for p in producers)
    assert any(p.schedule is None for p in producers)
    assert any(p.run == "examples.tail_log" for p in producers)


def run_example(
    name: str, params: dict[str, Any], state: dict[str, Any] | None = None
) -> ProducerResult:
    import workers.example_producers  # noqa: F401 - registers the example producers

    result = get_producer(name)(
        ProducerContext(
            workflow="wf",
            producer="p",
            scheduled_for=utc_now(),
            trigger="schedule",
            params=params,
            state=state or {},
            logger=logging.getLogger("test"),
        )
    )
    assert isinstance(result, ProducerResult)
    return result


def test_tail_log_counts_new_complete_lines_from_its_cursor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    params: dict[str, object] = {"path": "app.log", "contains": "ERROR"}
    first = run_example("examples.tail_log", params)
    assert (tmp_path / "app.log").exists()
    assert first.result["lines"] == 0
    with (tmp_path / "app.log").open("a") as log:
        log.write("ERROR one\nok two\nERROR thr")
    second = run_example("examples.tail_log", params, first.state)
    assert second.result == {"lines": 2, "matches": 1, "offset": 17}
    with (tmp_path / "app.log").open("a") as log:
        log.write("ee\n")
    third = run_example("examples.tail_log", params, second.state)
    assert third.result == {"lines": 1, "matches": 1, "offset": 29}
    assert third.state is not None and third.state["matches_total"] == 2
    (tmp_path / "app.log").write_text("ERROR after truncation\n")
    fourth = run_example("examples.tail_log", params, third.state)
    assert (fourth.result["lines"], fourth.result["matches"]) == (1, 1)


def test_example_producers_keep_relative_paths_inside_the_working_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = run_example("examples.write_summary", {"directory": "out", "name": "s"}, {"count": 4})
    summary = json.loads((tmp_path / "out" / "s.json").read_text())
    assert (summary["count"], summary["workflow"], summary["producer"]) == (5, "wf", "p")
    assert result.state == {"count": 5}
    with pytest.raises(ValueError, match="leaves the working directory"):
        run_example("examples.tail_log", {"path": "../outside.log"})
    with pytest.raises(ValueError, match="plain file name"):
        run_example("examples.write_summary", {"name": "../s"})


def test_a_redis_orphaned_by_a_killed_up_is_stopped_at_the_next_start(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    orphan = RedisServer(layout.redis, appendonly=False).start()
    assert orphan.process is not None
    stranger = subprocess.Popen(["sleep", "30"], cwd=tmp_path)
    try:
        layout.run.mkdir()
        layout.redis_pid.write_text(f"{stranger.pid}\n")
        stop_orphaned_redis(layout)  # a pid whose process is not our Redis is left alone
        assert stranger.poll() is None
        layout.redis_pid.write_text(f"{orphan.process.pid}\n")
        stop_orphaned_redis(layout)
        assert orphan.process.wait(1) == 0
    finally:
        stranger.kill()
        stranger.wait()
        orphan.stop()


def test_stored_secrets_are_private_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    secret = stored_secret(path)
    assert len(secret) >= 24
    assert path.stat().st_mode & 0o777 == 0o600
    path.chmod(0o644)
    assert stored_secret(path) == secret
    assert path.stat().st_mode & 0o777 == 0o600


def supervisor_in(tmp_path: Path, reports: list[str], policy: RestartPolicy) -> Supervisor:
    return Supervisor(
        env=os.environ,
        cwd=tmp_path,
        log_dir=tmp_path,
        interrupts=Interrupts(),
        report=reports.append,
        policy=policy,
    )


def test_stop_kills_the_whole_group_of_a_child_that_ignores_sigterm(tmp_path: Path) -> None:
    supervisor = supervisor_in(tmp_path, [], RestartPolicy())
    stubborn = "trap '' TERM; sleep 300 & echo started; wait"
    child = supervisor.spawn("stubborn", ["sh", "-c", stubborn])
    child.wait_for_log("started", 10)
    group = [p for p in psutil.process_iter() if _pgid(p.pid) == child.process.pid]
    assert len(group) == 2
    began = time.monotonic()
    supervisor.stop(grace=0.5)
    assert time.monotonic() - began < 3
    wait_until(lambda: not [p for p in group if _alive(p)], 2, "the group to be killed")


def test_a_child_that_dies_is_restarted_with_backoff_until_the_limit(tmp_path: Path) -> None:
    reports: list[str] = []
    policy = RestartPolicy(limit=3, window_s=60, first_backoff_s=0.2, max_backoff_s=0.4)
    supervisor = supervisor_in(tmp_path, reports, policy)
    supervisor.spawn(
        "short", ["sh", "-c", "echo started $(date +%s.%N); echo cannot connect; exit 3"]
    )
    deadline = time.monotonic() + 20
    with pytest.raises(ChildExitedError) as refused:
        while time.monotonic() < deadline:
            supervisor.check()
            time.sleep(0.01)
    assert re.search(r"short exited with 3; .*: cannot connect; restarted 3 times", str(refused))
    starts = [
        float(line.split()[1])
        for line in (tmp_path / "short.log").read_text().splitlines()
        if line.startswith("started")
    ]
    assert len(starts) == 4  # the first start and three restarts
    gaps = [later - earlier for earlier, later in itertools.pairwise(starts)]
    assert all(gap >= backoff for gap, backoff in zip(gaps, (0.2, 0.4, 0.4), strict=True)), gaps
    assert [line.split(";")[-1].strip() for line in reports if "restarting" in line] == [
        "restarting it in 0.2s",
        "restarting it in 0.4s",
        "restarting it in 0.4s",
    ]
    assert sum("short restarted (pid" in line for line in reports) == 3


def test_a_child_that_keeps_running_after_a_restart_is_left_alone(tmp_path: Path) -> None:
    reports: list[str] = []
    supervisor = supervisor_in(tmp_path, reports, RestartPolicy(first_backoff_s=0.05))
    flag = tmp_path / "second"
    script = f"if [ -e {flag} ]; then echo up; exec sleep 300; fi; touch {flag}; exit 1"
    supervisor.spawn("flaky", ["sh", "-c", script])
    try:
        wait_until(
            lambda: _checked(supervisor) and "up" in supervisor.children[0].log(),
            10,
            "the restarted child",
        )
        first = supervisor.children[0].pid
        for _ in range(5):
            supervisor.check()
        assert supervisor.children[0].pid == first and supervisor.children[0].alive()
        assert len([line for line in reports if "restarted (pid" in line]) == 1
    finally:
        supervisor.stop(grace=1)


def _checked(supervisor: Supervisor) -> bool:
    supervisor.check()
    return True


def _alive(process: psutil.Process) -> bool:
    try:
        return bool(process.status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def test_the_view_shows_each_producer_with_its_recent_runs(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'view.db'}")
    migrate.upgrade(engine)
    now = utc_now()
    workflow = new_workflow(engine, "shop", {}, now=now)
    spec = schedule_spec(workflow.id, "poll", next_run_at=now + timedelta(seconds=30))
    ProducerScheduleStore(engine).upsert(spec, now=now)
    for age in (5, 20, 90):
        RunPath(engine).begin_run(
            workflow_id=workflow.id,
            producer_name="poll",
            scheduled_for=now - timedelta(seconds=age),
            trigger="schedule",
            task_id=None,
            now=now - timedelta(seconds=age),
        )
    [view] = live_view.snapshot(engine, now)
    assert (view.workflow, view.producer, view.schedule, view.recent_runs) == (
        "shop",
        "poll",
        "every 30s",
        2,
    )
    console = Console(record=True, width=120)
    console.print(live_view.render([view], ["Flower: off"], now))
    screen = console.export_text()
    assert "Flower: off" in screen and "in 30s" in screen and "every 30s" in screen
    assert live_view.progress_line([view], now).endswith("2 runs in the last minute, 1 producer")


def shop_with_a_due_failing_and_a_paused_producer(engine: Engine, now: datetime) -> None:
    """`poll` due now, whose last run failed; `sleepy` paused, its stored next run earlier."""
    workflow = new_workflow(engine, "shop", {}, now=now)
    schedules = ProducerScheduleStore(engine)
    schedules.upsert(schedule_spec(workflow.id, "poll", next_run_at=now), now=now)
    sleepy = schedule_spec(workflow.id, "sleepy", next_run_at=now - timedelta(seconds=9))
    schedules.upsert(replace(sleepy, paused=True), now=now)
    [slot] = BeatClaims(engine).claim_due(now=now, lease=timedelta(minutes=1), limit=10)
    assert slot.producer_name == "poll"  # a paused producer is never claimed
    run = RunPath(engine).begin_run(
        workflow_id=workflow.id,
        producer_name="poll",
        scheduled_for=now,
        trigger="schedule",
        task_id="t1",
        now=now,
    )
    assert run is not None
    error = "Traceback (most recent call last):\n  ...\nValueError: boom\x1b[31m [red]x[/red]"
    RunPath(engine).finish_run(
        run, status="failed", finished_at=now, duration_ms=1.0, error=error, result=None
    )
    outcome = SlotOutcome("failed", now, now, {})  # next run: now again, so it shows as due
    assert RunPath(engine).commit_slot(slot.schedule_id, slot.claim_token, outcome, now=now)


REASON = "ValueError: boom\\x1b[31m [red]x[/red]"  # escaped, and not read as markup


def test_the_view_shows_paused_due_and_the_last_failure(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'view.db'}")
    migrate.upgrade(engine)
    now = utc_now()
    shop_with_a_due_failing_and_a_paused_producer(engine, now)
    views = live_view.snapshot(engine, now)
    assert [(v.producer, v.paused, v.last_failure) for v in views] == [
        ("poll", False, REASON),
        ("sleepy", True, None),
    ]
    console = Console(record=True, width=160)
    console.print(live_view.render(views, ["drumline up: data dir D"], now))
    rows = {line.split()[0]: line for line in console.export_text().splitlines() if line.strip()}
    assert rows["poll"].split()[3:5] == ["due", "now"] and REASON in rows["poll"]
    assert rows["sleepy"].split()[3:5] == ["paused", "-"]
    line = live_view.progress_line(views, now)
    assert line.endswith(
        f"1 runs in the last minute, 2 producers, 1 paused, 1 failing: shop/poll ({REASON})"
    )
    assert len(line) < 160


def test_status_and_ls_show_paused_and_the_last_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    engine = make_engine(url)
    migrate.upgrade(engine)
    now = utc_now()
    shop_with_a_due_failing_and_a_paused_producer(engine, now)
    monkeypatch.setenv("DRUMLINE_DATABASE_URL", url)
    runner = CliRunner()

    shown = runner.invoke(cli, ["status", "shop"], terminal_width=250)
    assert shown.exit_code == 0, shown.output
    rows = {line.split()[1]: line for line in shown.output.splitlines() if "demo.noop" in line}
    assert REASON in rows["poll"] and "paused" not in rows["poll"]
    assert "paused" in rows["sleepy"] and when(now - timedelta(seconds=9)) not in rows["sleepy"]
    data = json.loads(runner.invoke(cli, ["status", "shop", "--json"]).output)
    by_name = {p["name"]: p for p in data["producers"]}
    assert (by_name["sleepy"]["paused"], by_name["sleepy"]["next_run_at"]) == (True, None)
    assert by_name["poll"]["last_failure"] == REASON

    listed = json.loads(runner.invoke(cli, ["ls", "--json"]).output)
    [shop] = listed["workflows"]
    assert (shop["producers"], shop["paused"], shop["next_run_at"]) == (2, 1, now.isoformat())
    ProducerScheduleStore(engine).set_paused(shop_id(engine), True, now=now)
    table = runner.invoke(cli, ["ls"], terminal_width=250).output
    [row] = [line for line in table.splitlines() if "shop" in line]
    assert row.split()[-2] == "paused" and "2 (2 paused)" in row  # the last is a border


def shop_id(engine: Engine) -> int:
    workflow = WorkflowStore(engine).get("shop")
    assert workflow is not None
    return workflow.id


def test_read_commands_create_nothing_and_name_the_data_dir_they_looked_at(
    tmp_path: Path,
) -> None:
    empty = tmp_path / "elsewhere"
    empty.mkdir()
    command = [sys.executable, "-c", "from workers.cli.main import main; main()"]
    for args in (["ls"], ["status", "shop"], ["runs", "shop"], ["-v", "ls", "--json"]):
        result = subprocess.run(
            [*command, *args], cwd=empty, env=up_env(), capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 1, result
        expected = empty / ".drumline" / "drumline.db"
        assert f"no drumline database at {expected} (data dir {expected.parent})" in result.stderr
        assert "DRUMLINE_DATA_DIR" in result.stderr
        assert list(empty.iterdir()) == [], args
    # -v: drumline's own steps, in a format naming the logger.
    assert " INFO drumline.cli: producer modules besides the built-ins: none" in result.stderr


def test_up_serves_the_web_view_with_flowers_credentials_and_a_private_token(
    tmp_path: Path, start_up: StartUp
) -> None:
    data, port = tmp_path / "data", free_port()
    up = start_up(data, "--flower-port", str(free_port()), "--web", "--web-port", str(port))
    up.wait_for_output("runs in the last minute", 60)  # started, and the examples deployed
    password = (data / "flower.password").read_text().strip()
    token = (data / "web.token").read_text().strip()
    where = f"password in {data / 'flower.password'}, bearer token in {data / 'web.token'}"
    assert f"web ready on http://127.0.0.1:{port} (user drumline, {where})" in up.text()
    assert password not in up.text() and token not in up.text()  # piped: a log
    assert modes(data)["web.token"] == 0o600

    def get(path: str, authorization: str | None) -> tuple[int, str]:
        request = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
        if authorization is not None:
            request.add_header("Authorization", authorization)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return int(response.status), response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, ""

    basic = "Basic " + base64.b64encode(f"drumline:{password}".encode()).decode()
    assert get("/", None)[0] == 401
    status, page = get("/", basic)
    assert status == 200 and "example-summaries" in page
    status, body = get("/api/workflows", f"Bearer {token}")
    assert status == 200
    assert "example-summaries" in {w["name"] for w in json.loads(body)["workflows"]}
    assert_stopped_cleanly(up, signal.SIGINT)

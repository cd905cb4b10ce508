"""Profiles of what dominates where a target is missed.

    python -m bench.profiles dispatch [--store sqlite|postgresql] [--due 10000]
    python -m bench.profiles worker [--store ...] [--tasks 3000] [--seconds 10]
    python -m bench.profiles beat [--store ...] [--producers 2000] [--seconds 10]
    python -m bench.profiles runpath [--store ...] [--tasks 3000]

`dispatch` runs drumline's beat in-process under pyinstrument while it claims and sends `--due`
rows. `worker` preloads `--tasks` run_producer messages, then samples one prefork child of a
2-process worker with py-spy (`py-spy record --format raw`, summarised by function). `beat`
samples a real beat process while `--producers` slots fall due over `--seconds`. `runpath`
preloads `--tasks` messages the same way, then runs each in-process as a pool child would (the
boundary's check, then the task) under cProfile counting CPU time, not wall time: drumline's
own CPU per run, without Celery's consumer and pool, which py-spy's wall-clock samples of a
child mix with waiting on the database.
"""

from __future__ import annotations

import argparse
import collections
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from bench.harness import SendCounter, tick_until
from bench.infra import Infra, drumline_app, drumline_env, infrastructure, step, wait_for
from bench.procs import running, stop_all, worker_args
from bench.seed import ScheduleSeeder
from models.db import make_engine

NO_PY_SPY = "py-spy is not installed: pip install py-spy"


def profile_dispatch(infra: Infra, store: str, due: int) -> str:
    from pyinstrument import Profiler
    from pyinstrument.renderers import ConsoleRenderer

    from beat.scheduler import ProducerScheduler

    with infra.database(store) as url:
        env = drumline_env(infra, url, infra.scratch("data"))
        engine = make_engine(url)
        ScheduleSeeder(engine).grow_to(due, due=due)
        scheduler = ProducerScheduler(app=drumline_app(env), lazy=True)
        with SendCounter() as counter:
            profiler = Profiler(interval=0.0005)
            profiler.start()
            ran = tick_until(scheduler, counter, due, timeout=120)
            profiler.stop()
        scheduler.close()
        engine.dispose()
    step(f"dispatch: {ran.sent} sent in {ran.seconds:.2f}s ({ran.rate:,.0f}/s)")
    tree = profiler.output_text(unicode=True, color=False, show_all=False)
    flat = profiler.output(ConsoleRenderer(flat=True, unicode=True, color=False, show_all=True))
    # The flat view charges library frames it hides to "[self]" of the caller: drop those.
    lines = [line for line in flat.splitlines() if "[self]" not in line and line[:1].isdigit()]
    return f"{tree}\nSelf time by function (top 30):\n" + "\n".join(lines[:30])


def profile_worker(infra: Infra, store: str, tasks: int, seconds: float) -> str:
    from bench.end_to_end import preload_drumline, succeeded_runs

    py_spy = shutil.which("py-spy")
    if py_spy is None:
        return NO_PY_SPY
    with _profiled_database(infra, store, "worker") as (env, engine, out):
        preload_drumline(env, engine, tasks)
        with running(worker_args("workers.app", "producers"), env, out.parent / "w.log") as worker:
            wait_for(lambda: succeeded_runs(engine) > 0, 60)
            children = worker.children()
            target = children[0] if children else worker.pid
            _py_spy_record(py_spy, target, seconds, out, idle=False)
    return _summary(out)


def profile_run_path(infra: Infra, store: str, tasks: int) -> str:
    """cProfile (CPU time) of `tasks` preloaded run_producer messages run in this process."""
    import cProfile
    import io
    import os
    import pstats

    from bench.end_to_end import preload_drumline, succeeded_runs

    with _profiled_database(infra, store, "runpath") as (env, engine, _out):
        preload_drumline(env, engine, tasks)
        os.environ.update(env)  # the worker's settings are read when its app is imported
        messages = _queued_messages(infra)
        from workers.services.run_metrics import enable_run_metrics
        from workers.tasks.app import settings
        from workers.tasks.message_boundary import check_message
        from workers.tasks.run_tasks import run_producer

        enable_run_metrics(settings.metrics_dir, producer_labels=settings.metrics_producer_labels)

        def run_all(batch: list[Any]) -> float:
            began = time.process_time()
            for message in batch:
                check_message(run_producer.name, message, None)
                args, kwargs, _embed = message.decode()
                run_producer.apply(args, kwargs, task_id=message.headers["id"])
            return time.process_time() - began

        # The first half measured plain, the second under the profiler, which adds its own.
        half = len(messages) // 2
        plain_s = run_all(messages[:half])
        plain_runs = succeeded_runs(engine)
        profiler = cProfile.Profile(time.process_time)
        profiler.enable()
        run_all(messages[half:])
        profiler.disable()
        committed = succeeded_runs(engine)
    report = io.StringIO()
    stats = pstats.Stats(profiler, stream=report)
    stats.sort_stats("tottime").print_stats(40)
    stats.sort_stats("cumulative").print_stats(70)
    per_run = 1000 * plain_s / max(plain_runs, 1)
    head = f"{len(messages)} messages, {committed} committed runs; unprofiled, the first"
    head += f" {plain_runs}: CPU {per_run:.2f} ms per run (boundary check + task, in-process)"
    return f"{head}\n{report.getvalue()}"


def _queued_messages(infra: Infra) -> list[Any]:
    """The messages beat left on the producers queue, as kombu Messages (taken off it)."""
    import base64
    import json

    from kombu.message import Message

    from beat.dispatch import PRODUCERS_QUEUE

    client = infra.redis()
    items = client.lrange(PRODUCERS_QUEUE, 0, -1)
    client.delete(PRODUCERS_QUEUE)
    messages = []
    for item in reversed(items):  # LPUSH, consumed from the right
        envelope = json.loads(item)
        messages.append(
            Message(
                body=base64.b64decode(envelope["body"]),
                content_type=envelope["content-type"],
                content_encoding=envelope["content-encoding"],
                headers=envelope["headers"],
                properties=envelope["properties"],
            )
        )
    return messages


def profile_beat(infra: Infra, store: str, producers: int, seconds: float) -> str:
    """py-spy on a real beat process sending `producers` slots spread over `seconds`."""
    from datetime import timedelta

    from bench.procs import beat_args
    from models.types import utc_now

    py_spy = shutil.which("py-spy")
    if py_spy is None:
        return NO_PY_SPY
    with _profiled_database(infra, store, "beat") as (env, engine, out):
        first = utc_now() + timedelta(seconds=4)
        spacing = timedelta(seconds=seconds / producers)
        ScheduleSeeder(engine, every=f"{int(seconds)}s").add(
            producers, lambda i: first + i * spacing
        )
        command = beat_args("workers.app", "beat.scheduler:ProducerScheduler", out.parent)
        with running(command, env, out.parent / "beat.log") as beat:
            beat.wait_for_log("beat: Starting...", 30)
            time.sleep(max(0.0, (first - utc_now()).total_seconds()))
            _py_spy_record(py_spy, beat.pid, seconds, out, idle=True)
    return _summary(out)


@contextmanager
def _profiled_database(
    infra: Infra, store: str, name: str
) -> Iterator[tuple[dict[str, str], Engine, Path]]:
    """A database of `store` with drumline's environment and engine, and the file py-spy
    writes the `name` profile to (in its own scratch dir, beside the process's log)."""
    with infra.database(store) as url:
        env = drumline_env(infra, url, infra.scratch("data"))
        engine = make_engine(url)
        try:
            yield env, engine, infra.scratch(name) / "profile.txt"
        finally:
            engine.dispose()


def _summary(out: Path) -> str:
    return summarise_raw(out) if out.exists() else "py-spy produced no profile"


def _py_spy_record(py_spy: str, pid: int, seconds: float, out: Path, *, idle: bool) -> None:
    """Sample `pid` for `seconds` into `out` (raw format), without pausing it."""
    command = [py_spy, "record", "--pid", str(pid), "--duration", str(int(seconds))]
    command += ["--format", "raw", "--output", str(out), "--nonblocking"]
    subprocess.run(
        command + (["--idle"] if idle else []),
        check=False,
        capture_output=True,
        timeout=seconds + 30,
    )


def summarise_raw(path: Path, top: int = 30) -> str:
    """Self and inclusive shares per function from py-spy's raw (collapsed) output.

    Frames found in (nearly) as many samples as the most common frame (process bootstrap, the
    pool loop) are left out of the inclusive list: they say nothing about where time goes.
    """
    inclusive: collections.Counter[str] = collections.Counter()
    leaf: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        total += count
        frames = [_name(frame) for frame in stack.split(";")]
        leaf[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    lines = [f"{total} samples (wall clock, idle included)", "", "self:"]
    lines += [f"{100 * c / total:5.1f}%  {f}" for f, c in leaf.most_common(12)]
    lines += ["", "inclusive:"]
    # Frames (nearly) every sample shares, such as the process bootstrap, say nothing.
    ceiling = 0.97 * max(inclusive.values(), default=0)
    shown = [(f, c) for f, c in inclusive.most_common() if c < ceiling][:top]
    lines += [f"{100 * c / total:5.1f}%  {f}" for f, c in shown]
    return "\n".join(lines)


def _name(frame: str) -> str:
    return frame.split(" (")[0] + " " + _short(frame)


def _short(frame: str) -> str:
    if "(" not in frame:
        return ""
    where = frame.split("(", 1)[1].rstrip(")")
    parts = where.split("/")
    return "(" + "/".join(parts[-2:]) + ")"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.profiles", description=__doc__)
    parser.add_argument("what", choices=["dispatch", "worker", "beat", "runpath"])
    parser.add_argument("--store", default="postgresql", choices=["sqlite", "postgresql"])
    parser.add_argument("--due", type=int, default=10_000)
    parser.add_argument("--tasks", type=int, default=3_000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--producers", type=int, default=2_000)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="drumline-profile-"))
    began = time.monotonic()
    try:
        with infrastructure(workdir) as infra:
            if args.what == "dispatch":
                print(profile_dispatch(infra, args.store, args.due))
            elif args.what == "runpath":
                print(profile_run_path(infra, args.store, args.tasks))
            elif args.what == "beat":
                print(profile_beat(infra, args.store, args.producers, args.seconds))
            else:
                print(profile_worker(infra, args.store, args.tasks, args.seconds))
    finally:
        stop_all()
        shutil.rmtree(workdir, ignore_errors=True)
    step(f"profile done in {time.monotonic() - began:.0f}s")


if __name__ == "__main__":
    main()

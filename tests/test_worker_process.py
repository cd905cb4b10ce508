"""How a `celery -A workers.app worker` process starts."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


@pytest.mark.parametrize("empty_db_url", ["sqlite"], indirect=True)
def test_a_pool_that_runs_tasks_off_the_main_thread_is_refused(
    drumline_env: dict[str, str],
) -> None:
    # Without the check this worker would start (and the run would time out): every producer
    # run would then fail on its time limit instead.
    worker = subprocess.run(
        [sys.executable, "-m", "celery", "-A", "workers.app", "worker", "--pool", "threads"],
        env={**os.environ, **drumline_env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert worker.returncode == 1
    assert "drumline workers need --pool prefork or --pool solo" in worker.stderr
    assert "celery@" not in worker.stdout + worker.stderr, "the worker started"

"""The metrics directory: a process's start removes what dead processes of its role on its host
left behind, and nothing else."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from beat.metrics_files import (
    best_effort,
    metric_files,
    process_dir_name,
    remove_dead_processes,
)


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_only_the_dead_processes_of_the_role_on_this_host_are_removed(tmp_path: Path) -> None:
    dead, alive = dead_pid(), os.getpid()
    names = [
        process_dir_name("worker", "h1", dead),  # removed
        process_dir_name("worker", "h1", alive),
        process_dir_name("beat", "h1", dead),  # another role
        process_dir_name("worker", "h2", dead),  # another host: its pids mean nothing here
    ]
    for name in names:
        (tmp_path / name).mkdir()
        (tmp_path / name / "counter_1.db").write_bytes(b"")
    remove_dead_processes(tmp_path, "worker", "h1")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names[1:])
    assert len(metric_files(tmp_path)) == 3


def test_a_failing_metric_update_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    @best_effort
    def observe(value: float) -> None:
        raise OSError(28, "No space left on device")

    with caplog.at_level(logging.WARNING, logger="drumline.metrics"):
        observe(1.0)
    assert "metrics: observe not recorded: OSError" in caplog.text

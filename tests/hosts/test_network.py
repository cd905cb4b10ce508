"""The namespaces harness cleans up after itself: after an exception, after Ctrl-C (SIGINT) of
a run with every host up, and, for a run killed outright, at the next run's start."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import psutil
import pytest

from tests.e2e import wait_until
from tests.hosts.network import Network, namespaces_left, sweep_stale, why_unavailable

REASON = why_unavailable()
pytestmark = pytest.mark.skipif(REASON is not None, reason=f"no namespaces here: {REASON}")


def python(script: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )


def test_an_exception_inside_removes_every_namespace_and_link() -> None:
    with pytest.raises(RuntimeError, match="boom"), Network(["a", "b"]) as network:
        tag = network.bridge.removesuffix(".b")
        assert len(namespaces_left(tag)) == 2 + 2 + 1  # two namespaces, two veth ends, a bridge
        raise RuntimeError("boom")
    assert namespaces_left(tag) == []


def test_a_killed_run_leaves_names_the_next_run_removes() -> None:
    child = python(
        """
        import os, signal
        from tests.hosts.network import Network
        network = Network(["a"]).create()
        print(network.bridge.removesuffix(".b"), flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    assert child.stdout is not None
    tag = child.stdout.readline().strip()
    child.wait()
    assert child.returncode == -signal.SIGKILL
    assert namespaces_left(tag)  # nothing ran to remove them
    removed = sweep_stale()
    assert set(namespaces_left(tag)) == set() and len(removed) >= 2


def test_ctrl_c_stops_every_process_and_removes_every_host() -> None:
    child = python(
        """
        import time
        from tests.hosts.cluster import running_cluster
        with running_cluster() as cluster:
            print(cluster.network.bridge.removesuffix(".b"), cluster.scratch, flush=True)
            time.sleep(600)
        """
    )
    assert child.stdout is not None
    tag, scratch = child.stdout.readline().split()
    child.send_signal(signal.SIGINT)
    child.wait(120)
    assert namespaces_left(tag) == []

    def gone() -> bool:
        return not [
            p
            for p in psutil.process_iter(["cmdline"])
            if scratch in " ".join(p.info["cmdline"] or ())
        ]

    wait_until(gone, 10, f"no process left running from {scratch}")
    assert not os.path.exists(scratch)

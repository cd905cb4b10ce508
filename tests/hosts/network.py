"""Hosts as Linux network namespaces on one bridge, so a test can cut the network between them.

Each host is a namespace with one veth link to a bridge in the root namespace, and its own
address in a /24 chosen for this run. The bridge has the subnet's first address, so the test
process itself (in the root namespace) reaches every host, as an operator's shell would. A
partition is made in two ways: a whole host by taking its link down (packets vanish, TCP
connections hang and retransmit, as across a cut cable), one host from one other host by a
blackhole route inside the namespace.

Every name carries the creating process's id: a run that was killed outright (SIGKILL, so no
`finally` ran) leaves names that the next run recognises as stale and deletes first.
"""

from __future__ import annotations

import ipaddress
import os
import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

PREFIX = "dl"
NETNS_DIR = Path("/run/netns")
# 10.213.0.0/16 is private and unused here; each run takes one /24 of it.
SUPERNET = ipaddress.ip_network("10.213.0.0/16")
IP = "ip"


class NamespacesUnavailableError(RuntimeError):
    """This machine (or user) cannot create network namespaces, bridges and veth pairs."""


def run_ip(*args: str) -> str:
    done = subprocess.run([IP, *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"`ip {' '.join(args)}` failed: {done.stderr.strip()}")
    return done.stdout


def why_unavailable() -> str | None:
    """None if namespaces, a bridge and a veth pair can be made here, else the reason."""
    if os.geteuid() != 0:
        return "network namespaces need root (CAP_NET_ADMIN and CAP_SYS_ADMIN)"
    probe = f"{PREFIX}probe{os.getpid():x}"[:15]
    try:
        run_ip("link", "add", probe, "type", "bridge")
    except (OSError, RuntimeError) as error:
        return f"cannot create a bridge: {error}"
    try:
        run_ip("link", "del", probe)
        run_ip("netns", "add", probe)
        run_ip("netns", "del", probe)
    except (OSError, RuntimeError) as error:
        return f"cannot create a network namespace: {error}"
    return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_stale() -> list[str]:
    """Delete namespaces and bridges left by runs whose process no longer exists."""
    removed: list[str] = []
    pattern = re.compile(rf"^{PREFIX}([0-9a-f]+)[-.]")
    names = [p.name for p in NETNS_DIR.iterdir()] if NETNS_DIR.is_dir() else []
    links = [line.split(":")[1].strip().split("@")[0] for line in run_ip("-o", "link").splitlines()]
    for name in [*names, *links]:
        match = pattern.match(name)
        if match and not _alive(int(match.group(1), 16)):
            kind = ("netns", "del", name) if name in names else ("link", "del", name)
            subprocess.run([IP, *kind], capture_output=True, check=False)
            removed.append(name)
    return removed


def _free_subnet() -> ipaddress.IPv4Network:
    used = [
        ipaddress.ip_interface(word).network
        for line in run_ip("-o", "-4", "addr").splitlines()
        for word in line.split()[3:4]
    ]
    for subnet in SUPERNET.subnets(new_prefix=24):
        if subnet.network_address.packed[2] and not any(subnet.overlaps(u) for u in used):
            return subnet  # type: ignore[return-value]
    raise RuntimeError(f"no free /24 left in {SUPERNET}")


@dataclass
class Host:
    """One namespace: its name, its address, and its link's end in the root namespace."""

    name: str
    namespace: str
    address: str
    outer_link: str

    def command(self, argv: Sequence[str]) -> list[str]:
        """`argv` run inside this host's namespace."""
        return [IP, "netns", "exec", self.namespace, *argv]


@dataclass
class Network:
    """A bridge and one namespace per host name; a context manager that always removes them."""

    host_names: Sequence[str]
    hosts: dict[str, Host] = field(default_factory=dict, init=False)
    subnet: ipaddress.IPv4Network | None = field(default=None, init=False)
    _tag: str = field(default_factory=lambda: f"{PREFIX}{os.getpid():x}", init=False)

    @property
    def bridge(self) -> str:
        return f"{self._tag}.b"

    @property
    def gateway(self) -> str:
        assert self.subnet is not None
        return str(self.subnet.network_address + 1)

    def create(self) -> Network:
        sweep_stale()
        self.subnet = _free_subnet()
        run_ip("link", "add", self.bridge, "type", "bridge")
        run_ip("addr", "add", f"{self.gateway}/24", "dev", self.bridge)
        run_ip("link", "set", self.bridge, "up")
        for index, name in enumerate(self.host_names):
            self._add_host(index, name)
        return self

    def _add_host(self, index: int, name: str) -> None:
        assert self.subnet is not None
        namespace = f"{self._tag}-{name}"
        outer, inner = f"{self._tag}.v{index}", f"{self._tag}.i{index}"
        address = str(self.subnet.network_address + 10 + index)
        run_ip("netns", "add", namespace)
        self.hosts[name] = Host(name, namespace, address, outer)
        run_ip("link", "add", outer, "type", "veth", "peer", "name", inner)
        run_ip("link", "set", inner, "netns", namespace)
        run_ip("link", "set", outer, "master", self.bridge)
        run_ip("link", "set", outer, "up")
        in_ns = ("netns", "exec", namespace, IP)
        run_ip(*in_ns, "link", "set", "lo", "up")
        run_ip(*in_ns, "link", "set", inner, "name", "eth0")
        run_ip(*in_ns, "addr", "add", f"{address}/24", "dev", "eth0")
        run_ip(*in_ns, "link", "set", "eth0", "up")

    def destroy(self) -> None:
        """Remove every namespace (which takes its veth pair along) and the bridge."""
        for host in self.hosts.values():
            subprocess.run([IP, "netns", "del", host.namespace], capture_output=True, check=False)
            subprocess.run([IP, "link", "del", host.outer_link], capture_output=True, check=False)
        subprocess.run([IP, "link", "del", self.bridge], capture_output=True, check=False)
        self.hosts.clear()

    # --- faults ---------------------------------------------------------------------------------

    def isolate(self, name: str) -> None:
        """Cut `name` off from every other host (its link down)."""
        run_ip("link", "set", self.hosts[name].outer_link, "down")

    def rejoin(self, name: str) -> None:
        run_ip("link", "set", self.hosts[name].outer_link, "up")

    def cut(self, name: str, other: str) -> None:
        """Cut `name` off from `other` only: a blackhole route to it inside `name`."""
        host = self.hosts[name]
        run_ip("netns", "exec", host.namespace, IP, "route", "add", "blackhole", self._peer(other))

    def uncut(self, name: str, other: str) -> None:
        host = self.hosts[name]
        run_ip("netns", "exec", host.namespace, IP, "route", "del", "blackhole", self._peer(other))

    def _peer(self, other: str) -> str:
        return f"{self.hosts[other].address}/32"

    def __enter__(self) -> Network:
        try:
            return self.create()
        except BaseException:
            self.destroy()
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.destroy()


def namespaces_left(tag: str) -> list[str]:
    """Namespaces and links whose names start with `tag` (to check that a teardown was whole)."""
    names = [p.name for p in NETNS_DIR.iterdir()] if NETNS_DIR.is_dir() else []
    links = [line.split(":")[1].strip().split("@")[0] for line in run_ip("-o", "link").splitlines()]
    return [name for name in [*names, *links] if name.startswith(tag)]

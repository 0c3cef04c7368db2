"""A real remote daemon for tests: a second rootful dockerd listening on TCP inside a network
namespace the test creates, reached over a veth pair of the test's own (this machine
10.213.0.1, the daemon's host 10.213.0.2; no other route out of the namespace), with its own
data root, exec root and default bridge, and the harness's images loaded into it. To the
harness it is a daemon on another host: its published ports, its NAT rules and its bridges
live in that namespace, not in this machine's. Traffic goes only to the pair's addresses.

Everything it changes on this machine is undone after: the daemon (and the containerd it
supervises) stops, its folders are removed, and the namespace goes, with the veth pair."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import hostturn
import requests
import rootless

NETNS = "oh-matrix-remote"
HOST_END, DAEMON_END = "omr-here", "omr-there"  # the veth pair's two ends
HERE, THERE = "10.213.0.1", "10.213.0.2"  # a /30 of the test's own
PORT = 2375
BRIDGE = "10.214.0.1/24"  # the daemon's docker0, unlike this machine's, so evidence says which
POOL = "base=10.215.0.0/16,size=24"  # its networks of their own (custom-network)


class Dockerd:
    """The daemon's process, which a test may kill mid-run and start again on the same data root."""

    def __init__(self, args: list[str], log: Path) -> None:
        self.args, self.log = args, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, client: Callable[[], docker.DockerClient]) -> None:
        """Up and answering. Once more when its own containerd did not start in time: dockerd
        waits for it 20 s, which a loaded 2-core machine (the engine tests run two at once)
        has been seen to miss; a second failure is the test's."""
        for attempt in (1, 2):
            with open(self.log, "ab") as out:
                self.proc = subprocess.Popen(self.args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
            try:
                # 90 s: 20.10 may wait 15 s on purpose on a TCP endpoint without TLS
                rootless.wait_up(client, self.proc, self.log, "the remote daemon", 90)
                return
            except RuntimeError as e:
                if attempt == 2 or "timeout waiting for containerd to start" not in str(e):
                    raise
                self.kill()

    def kill(self) -> None:
        """Gone at once, as a crash or `kill -9` takes it (its containerd with it)."""
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            rootless.stop(self.proc, 60)


@dataclass(frozen=True)
class RemoteDaemon:
    socket: str  # its own unix socket, for loading images only: the harness gets the TCP endpoint
    dockerd: Dockerd | None = None

    @property
    def docker_host(self) -> str:
        return f"tcp://{THERE}:{PORT}"

    def client(self) -> docker.DockerClient:
        return docker.DockerClient(base_url=self.docker_host, timeout=300)


def _ip(*args: str, check: bool = True) -> None:
    subprocess.run(["ip", *args], check=check, capture_output=True, timeout=30)


@contextlib.contextmanager
def _namespace(netns: str = NETNS, here: str = HOST_END, there: str = DAEMON_END,
               addresses: tuple[str, str] = (HERE, THERE)) -> Iterator[None]:
    def in_ns(*args: str) -> None:
        _ip("netns", "exec", netns, "ip", *args)

    _ip("netns", "del", netns, check=False)  # a crashed earlier test's: start clean
    _ip("link", "del", here, check=False)
    _ip("netns", "add", netns)
    try:
        _ip("link", "add", here, "type", "veth", "peer", "name", there)
        _ip("link", "set", there, "netns", netns)
        _ip("addr", "add", f"{addresses[0]}/30", "dev", here)
        _ip("link", "set", here, "up")
        in_ns("addr", "add", f"{addresses[1]}/30", "dev", there)
        in_ns("link", "set", there, "up")
        in_ns("link", "set", "lo", "up")
        yield
    finally:
        _ip("netns", "del", netns, check=False)  # takes the veth pair with it
        _ip("link", "del", here, check=False)


@contextlib.contextmanager
def tcp_daemon() -> Iterator[RemoteDaemon]:
    """The daemon up and answering on its TCP endpoint; stopped and removed after, on any exit."""
    with _namespace(), _dockerd(NETNS, ["-H", f"tcp://{THERE}:{PORT}", "--tls=false"]) as daemon:
        yield daemon


@contextlib.contextmanager
def _dockerd(netns: str, extra: list[str]) -> Iterator[RemoteDaemon]:
    root = Path(tempfile.mkdtemp(prefix=f"{netns}-"))
    # nsenter enters the network namespace only: `ip netns exec` would also mount a sysfs
    # of its own, without the cgroup filesystems dockerd needs
    sock = root / "exec" / "docker.sock"
    dockerd = Dockerd(["nsenter", f"--net=/run/netns/{netns}", "dockerd", "--data-root", str(root / "data"),
                       "--exec-root", str(root / "exec"), "--pidfile", str(root / "dockerd.pid"),
                       "-H", f"unix://{sock}", *extra, "--bip", BRIDGE, "--default-address-pool", POOL],
                      root / "dockerd.log")
    daemon = RemoteDaemon(str(sock), dockerd)
    try:
        # up when it answers where the harness will reach it (TCP for a remote one)
        dockerd.start(daemon.client if any(a.startswith("tcp://") for a in extra) else
                      lambda: docker.DockerClient(base_url=f"unix://{sock}", timeout=300))
        yield daemon
    finally:
        with contextlib.suppress(docker.errors.DockerException, requests.exceptions.ConnectionError):
            c = docker.DockerClient(base_url=f"unix://{sock}", timeout=60)  # what a failed test left
            for container in c.containers.list(all=True):
                container.remove(force=True)
        dockerd.stop()
        # a container's shim outlives a daemon the test killed: its containerd's socket is here
        subprocess.run(["pkill", "-KILL", "-f", f"containerd-shim.*-address {root}/"], capture_output=True)
        for mounted in ("exec", "data"):  # dockerd mounts its data root on itself too
            subprocess.run(["umount", "-R", str(root / mounted)], capture_output=True)
        # what is still mounted under it (seen: exec/netns/default, the nsfs of a daemon stopped by
        # SIGTERM in the by-hand use below), deepest first
        points = [m.split()[1] for m in Path("/proc/mounts").read_text().splitlines()]
        left = [m for m in points if m.startswith(f"{root}/")]
        for mounted in sorted(left, key=len, reverse=True):
            subprocess.run(["umount", mounted], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


# -- a daemon of this machine's kind in a namespace of its own, for the harness run inside it --

OWN_NETNS = "oh-matrix-own"
OWN_HERE, OWN_THERE = "omo-here", "omo-there"


@dataclass(frozen=True)
class OwnDaemon:
    """A second rootful dockerd in a network namespace of the test's own, reached through its
    unix socket by a harness run inside that namespace (`wrap`): to the harness it is a local
    daemon like this machine's, with its own docker0 (10.214.0.1/24), its own iptables and nat
    rules and its own INPUT chain, so a firewall rule a test inserts there (`iptables`) meets
    the test's own cells only, never the traffic of anyone else on this machine's daemon."""

    daemon: RemoteDaemon
    netns: str = OWN_NETNS

    @property
    def docker_host(self) -> str:
        return f"unix://{self.daemon.socket}"

    def client(self) -> docker.DockerClient:
        return docker.DockerClient(base_url=self.docker_host, timeout=300)

    def wrap(self, cmd: list[str]) -> list[str]:
        """`cmd` run in the daemon's network namespace (nsenter: the net namespace only)."""
        return ["nsenter", f"--net=/run/netns/{self.netns}", *cmd]

    def iptables(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.wrap(["iptables", *args]), capture_output=True, text=True, timeout=30)

    @contextlib.contextmanager
    def rule(self, *spec: str) -> Iterator[str]:
        """One INPUT rule inserted first in the namespace's filter table, deleted after; yields
        it as `iptables -S` prints it."""
        done = self.iptables("-I", "INPUT", *spec)
        if done.returncode:
            raise RuntimeError(f"iptables -I INPUT {' '.join(spec)}: {done.stderr.strip()}")
        try:
            yield next(line for line in self.iptables("-S", "INPUT").stdout.splitlines() if line.startswith("-A"))
        finally:
            self.iptables("-D", "INPUT", *spec)


@contextlib.contextmanager
def own_daemon(userland_proxy: bool = True) -> Iterator[OwnDaemon]:
    """The daemon up in its namespace (`--userland-proxy=false` when asked); stopped and removed
    after, on any exit, with the namespace and everything in it."""
    flags = [] if userland_proxy else ["--userland-proxy=false"]
    # its namespace, veth pair and addresses are fixed: one such daemon on this machine at a time
    with (hostturn.flocked("own-daemon.lock"), _namespace(OWN_NETNS, OWN_HERE, OWN_THERE, ("10.213.0.5", "10.213.0.6")),
          _dockerd(OWN_NETNS, flags) as daemon):
        yield OwnDaemon(daemon)


if __name__ == "__main__":  # by hand: `python tests/harness/remotedaemon.py [--userland-proxy=false] IMAGE...`
    import sys
    import time

    wanted = [a for a in sys.argv[1:] if not a.startswith("--")]
    with own_daemon(userland_proxy="--userland-proxy=false" not in sys.argv) as own:
        if wanted:
            rootless.load_images(own.docker_host, *wanted)
        print(f"DOCKER_HOST={own.docker_host}; run the harness with: {' '.join(own.wrap([]))} ...", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
            while True:
                time.sleep(60)

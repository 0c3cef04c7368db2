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


def _in_ns(*args: str) -> None:
    _ip("netns", "exec", NETNS, "ip", *args)


@contextlib.contextmanager
def _namespace() -> Iterator[None]:
    _ip("netns", "del", NETNS, check=False)  # a crashed earlier test's: start clean
    _ip("link", "del", HOST_END, check=False)
    _ip("netns", "add", NETNS)
    try:
        _ip("link", "add", HOST_END, "type", "veth", "peer", "name", DAEMON_END)
        _ip("link", "set", DAEMON_END, "netns", NETNS)
        _ip("addr", "add", f"{HERE}/30", "dev", HOST_END)
        _ip("link", "set", HOST_END, "up")
        _in_ns("addr", "add", f"{THERE}/30", "dev", DAEMON_END)
        _in_ns("link", "set", DAEMON_END, "up")
        _in_ns("link", "set", "lo", "up")
        yield
    finally:
        _ip("netns", "del", NETNS, check=False)  # takes the veth pair with it
        _ip("link", "del", HOST_END, check=False)


@contextlib.contextmanager
def tcp_daemon() -> Iterator[RemoteDaemon]:
    """The daemon up and answering on its TCP endpoint; stopped and removed after, on any exit."""
    root = Path(tempfile.mkdtemp(prefix="oh-matrix-remote-"))
    with _namespace():
        # nsenter enters the network namespace only: `ip netns exec` would also mount a sysfs
        # of its own, without the cgroup filesystems dockerd needs
        sock = root / "exec" / "docker.sock"
        dockerd = Dockerd(["nsenter", f"--net=/run/netns/{NETNS}", "dockerd", "--data-root", str(root / "data"),
                           "--exec-root", str(root / "exec"), "--pidfile", str(root / "dockerd.pid"),
                           "-H", f"unix://{sock}", "-H", f"tcp://{THERE}:{PORT}", "--tls=false",
                           "--bip", BRIDGE, "--default-address-pool", POOL], root / "dockerd.log")
        daemon = RemoteDaemon(str(sock), dockerd)
        try:
            dockerd.start(daemon.client)
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
            shutil.rmtree(root, ignore_errors=True)


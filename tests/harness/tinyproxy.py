"""A real HTTP proxy between the parts, for tests: Debian's tinyproxy, run as a process of the
test (never the system service), as the proxy of a network the Docker bridges are not part
of (`corporate()`). It runs in a network namespace of the test's own, reached over a veth
pair (this machine 10.219.0.1, the proxy 10.219.0.2) with no other route out of the
namespace: a container's request reaches it (Docker masquerades a bridge's traffic leaving by
another interface, so the proxy sees this machine's end of the pair), and whatever the proxy
is asked for, it can reach nothing but this machine's end of the pair; asked for
host.docker.internal, a gateway or a container it answers its own error (tinyproxy: `500
Unable to connect`), as a corporate proxy does for addresses that are not its network's.

Traffic stays on this machine. Everything is undone after: the process, its folder, the
namespace and the veth pair."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

NETNS = "oh-matrix-proxy"
HOST_END, PROXY_END = "omp-here", "omp-there"
HERE, THERE = "10.219.0.1", "10.219.0.2"  # a /30 of the test's own
PORT = 61888  # the harness's own listeners take ports above 60999


@dataclass(frozen=True)
class Proxy:
    host: str
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def lines(self) -> list[str]:
        """What it logged: each request it was asked and what became of it."""
        return self.log.read_text(errors="replace").splitlines() if self.log.exists() else []


def _ip(*args: str, check: bool = True) -> None:
    subprocess.run(["ip", *args], check=check, capture_output=True, timeout=30)


def _config(folder: Path, listen: str, allow: list[str]) -> Path:
    lines = ["User nobody", "Group nogroup", f"Port {PORT}", f"Listen {listen}", "Timeout 30",
             f'LogFile "{folder / "tinyproxy.log"}"', "LogLevel Connect", "MaxClients 50",
             "ConnectPort 0",  # no CONNECT tunnels: plain HTTP requests only, each logged
             "DefaultErrorFile \"/usr/share/tinyproxy/default.html\"",
             *(f"Allow {a}" for a in allow)]
    conf = folder / "tinyproxy.conf"
    conf.write_text("\n".join(lines) + "\n")
    return conf


def _wait_listening(proc: subprocess.Popen[bytes], host: str, netns: str | None, log: Path) -> None:
    for _ in range(100):
        if proc.poll() is not None:
            raise RuntimeError(f"tinyproxy exited {proc.returncode}: {log.read_text(errors='replace')[-800:]}")
        probe = ["python3", "-c", f"import socket; socket.create_connection(('{host}', {PORT}), 1)"]
        if subprocess.run([*(["ip", "netns", "exec", netns] if netns else []), *probe],
                          capture_output=True).returncode == 0:
            return
        time.sleep(0.1)
    raise RuntimeError("tinyproxy did not listen within 10 s")


@contextlib.contextmanager
def _run(cmd: list[str], folder: Path, host: str, netns: str | None) -> Iterator[Proxy]:
    log = folder / "tinyproxy.log"
    with open(folder / "stderr", "wb") as err:
        proc = subprocess.Popen(cmd, stdout=err, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_listening(proc, host, netns, folder / "stderr")
        yield Proxy(host, PORT, log)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _folder() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="oh-matrix-proxy-"))
    os.chmod(folder, 0o777)  # tinyproxy drops to nobody, and writes its log here
    return folder


@contextlib.contextmanager
def corporate() -> Iterator[Proxy]:
    """tinyproxy in a namespace whose only route is the veth pair to this machine."""
    folder = _folder()
    # a crashed earlier test's: its tinyproxy (the only process this test runs there), then the namespace
    left = subprocess.run(["ip", "netns", "pids", NETNS], capture_output=True, text=True).stdout.split()
    for pid in left:
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), 9)
    _ip("netns", "del", NETNS, check=False)
    _ip("link", "del", HOST_END, check=False)
    _ip("netns", "add", NETNS)
    try:
        _ip("link", "add", HOST_END, "type", "veth", "peer", "name", PROXY_END)
        _ip("link", "set", PROXY_END, "netns", NETNS)
        _ip("addr", "add", f"{HERE}/30", "dev", HOST_END)
        _ip("link", "set", HOST_END, "up")
        for args in (("addr", "add", f"{THERE}/30", "dev", PROXY_END), ("link", "set", PROXY_END, "up"),
                     ("link", "set", "lo", "up")):
            _ip("netns", "exec", NETNS, "ip", *args)
        # Allow: this machine's end (Docker masquerades a bridge's traffic leaving by it) and
        # the private ranges a container's own address is in, should nothing masquerade it.
        conf = _config(folder, THERE, [f"{HERE}/32", "172.16.0.0/12", "10.0.0.0/8", "192.168.0.0/16"])
        with _run(["ip", "netns", "exec", NETNS, "tinyproxy", "-d", "-c", str(conf)], folder, THERE, NETNS) as p:
            yield p
    finally:
        _ip("netns", "del", NETNS, check=False)  # takes the veth pair with it
        _ip("link", "del", HOST_END, check=False)
        shutil.rmtree(folder, ignore_errors=True)


def reachable(proxy: Proxy) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((proxy.host, proxy.port), 2):
        return True
    return False

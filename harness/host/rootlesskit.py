"""A rootless daemon's RootlessKit, as it describes itself: its network driver (slirp4netns),
its port driver (builtin, slirp4netns), the namespace's own address and default gateway
(the host alias a container reaches this machine by) and whether that alias reaches this
machine's loopback (slirp4netns without `--disable-host-loopback`). Read from RootlessKit's
own API socket (`GET /v1/info`, what `rootlessctl info` prints) and its child's /proc, so
only for a daemon on this machine's socket; None where they cannot be read.

These decide a rootless cell: `host-gateway` is the namespace's bridge, where RootlessKit's
docker-proxy does not listen (it listens on the namespace's loopback, where the port driver
forwards this machine's published ports); this machine is reached at the host alias, and
only when it maps to the loopback is that this machine's published ports."""

from __future__ import annotations

import glob
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx


@dataclass(frozen=True)
class RootlessKit:
    version: str
    network_driver: str  # slirp4netns, vpnkit, pasta, lxc-user-nic
    port_driver: str  # builtin, slirp4netns
    child_ip: str | None  # the namespace's own address on its tap device (10.0.2.100)
    host_alias: str | None  # the namespace's default gateway: this machine as containers reach it (10.0.2.2)
    # The host alias reaches this machine's loopback, where the port driver publishes ports
    # (slirp4netns without --disable-host-loopback); None: not known for this network driver.
    host_loopback: bool | None
    api_socket: str
    child_pid: int | None = None  # RootlessKit's child: its /proc shows the namespace's routes and sockets

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        loop = {True: "maps to this machine's loopback", False: "does not reach this machine's loopback "
                "(--disable-host-loopback)", None: "its reach unknown"}[self.host_loopback]
        return (f"RootlessKit {self.version}: network {self.network_driver} (namespace {self.child_ip or '?'}, "
                f"host alias {self.host_alias or '?'} {loop}), port driver {self.port_driver}")


def api_sockets(docker_socket: str) -> list[str]:
    """Where RootlessKit puts its API socket for the daemon at `docker_socket`: its state dir,
    `$XDG_RUNTIME_DIR/dockerd-rootless` (docker's rootless script from 23.0 names it), else
    the temporary one RootlessKit makes itself (`/tmp/rootlesskitNNN`), owned by the same user."""
    try:
        owner = os.stat(docker_socket).st_uid
    except OSError:
        return []
    runtime_dir = Path(docker_socket).parent
    found = [str(runtime_dir / "dockerd-rootless" / "api.sock"), *sorted(glob.glob("/tmp/rootlesskit*/api.sock"))]
    out = []
    for path in found:
        try:
            if os.stat(path).st_uid == owner:
                out.append(path)
        except OSError:
            continue
    return out


def read(docker_socket: str) -> RootlessKit | None:
    for sock in api_sockets(docker_socket):
        try:
            with httpx.Client(transport=httpx.HTTPTransport(uds=sock), timeout=5) as http:
                info = http.get("http://rootlesskit/v1/info").json()
        except (httpx.HTTPError, ValueError):
            continue
        child = info.get("childPID")
        net, port = info.get("networkDriver") or {}, info.get("portDriver") or {}
        driver = str(net.get("driver", "?"))
        return RootlessKit(version=str(info.get("version", "?")), network_driver=driver,
                           port_driver=str(port.get("driver", "?")), child_ip=net.get("childIP"),
                           host_alias=_default_gateway(child) if child else None,
                           host_loopback=_slirp_loopback(child) if child and driver == "slirp4netns" else None,
                           api_socket=sock, child_pid=int(child) if child else None)
    return None


def listeners(pid: int, port: int) -> list[str] | None:
    """The addresses a TCP port is listened on in the network namespace of `pid`
    (/proc/PID/net/tcp, state 0A), None when it cannot be read."""
    found = []
    try:
        text = Path(f"/proc/{pid}/net/tcp").read_text()
    except OSError:
        return None
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) > 3 and fields[3] == "0A":
            addr, _, hexport = fields[1].partition(":")
            if int(hexport, 16) == port:
                found.append(".".join(str(b) for b in reversed(bytes.fromhex(addr))))
    return sorted(set(found))


def refused_at_gateway(kit: RootlessKit, name: str, address: str, port: int) -> str:
    """Why a connect from a container to `address`:`port` (a bridge gateway in RootlessKit's
    namespace) is refused although the target listens: what listens there instead, and where
    this machine is."""
    heard = listeners(kit.child_pid, port) if kit.child_pid else None
    where = (f"RootlessKit's docker-proxy listens for it on {', '.join(heard)} only" if heard
             else "nothing listens for it there" if heard is not None else "what listens there was not readable")
    alias = (f"; this machine is at {kit.host_alias} from a container (slirp4netns' host alias), which "
             + ("maps to its loopback, where the port driver publishes the port" if kit.host_loopback
                else "does not reach its loopback here (--disable-host-loopback)" if kit.host_loopback is False
                else "may or may not reach its loopback") if kit.host_alias else "")
    return (f"on this rootless daemon {name} is {address}, a bridge gateway inside RootlessKit's network "
            f"namespace, not this machine; port {port} there: {where} (the {kit.port_driver} port driver "
            f"forwards this machine's published ports to the namespace's loopback){alias}")


def _default_gateway(pid: int) -> str | None:
    """The default route's gateway in the namespace of `pid` (/proc/PID/net/route, hex little-endian)."""
    try:
        lines = Path(f"/proc/{pid}/net/route").read_text().splitlines()[1:]
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        if len(fields) > 2 and fields[1] == "00000000" and fields[2] != "00000000":
            raw = bytes.fromhex(fields[2])
            return ".".join(str(b) for b in reversed(raw))
    return None


def _slirp_loopback(child: int) -> bool | None:
    """Whether the slirp4netns serving RootlessKit's child `child` maps the host alias to the
    loopback: its own command line says so (`--disable-host-loopback`, docker's rootless
    script's default)."""
    for cmdline in glob.glob("/proc/[0-9]*/cmdline"):
        try:
            args = Path(cmdline).read_bytes().split(b"\0")
        except OSError:
            continue
        if args and os.path.basename(args[0]) == b"slirp4netns" and str(child).encode() in args:
            return b"--disable-host-loopback" not in args
    return None


def _api(sock: str) -> httpx.Client:
    return httpx.Client(transport=httpx.HTTPTransport(uds=sock), base_url="http://rootlesskit", timeout=10)


def forward(kit: RootlessKit, port: int) -> int:
    """This machine's 127.0.0.1:`port` forwarded to `port` in RootlessKit's namespace through
    its port driver (what `rootlessctl add-ports 127.0.0.1:PORT:PORT/tcp` does): how anything on
    this machine reaches a `--network host` container of a rootless daemon. Returns its id."""
    with _api(kit.api_socket) as http:
        resp = http.post("/v1/ports", json={"proto": "tcp", "parentIP": "127.0.0.1", "parentPort": port,
                                             "childPort": port})
    if resp.status_code >= 300:
        raise OSError(f"RootlessKit refused to forward 127.0.0.1:{port}: {resp.text[:200]}")
    return int(resp.json()["id"])


def unforward(api_socket: str, forward_id: int) -> None:
    """Remove a forward made by `forward` (gone already, or RootlessKit stopped: nothing to do)."""
    try:
        with _api(api_socket) as http:
            http.delete(f"/v1/ports/{forward_id}")
    except httpx.HTTPError:
        pass


def uid_map(pid: int) -> list[tuple[int, int, int]] | None:
    """The user namespace's uid map of `pid` (/proc/PID/uid_map: inside, outside, count), as
    newuidmap wrote it from /etc/subuid; None when it cannot be read."""
    try:
        lines = Path(f"/proc/{pid}/uid_map").read_text().splitlines()
    except OSError:
        return None
    return [(int(a), int(b), int(c)) for a, b, c in (line.split() for line in lines if len(line.split()) == 3)]


def user_id_on_host(kit: RootlessKit, user_id: int) -> str | None:
    """What a container's uid `user_id` (the runtime's user) is on this machine through the
    daemon's user namespace: a subordinate uid, or none at all."""
    ranges = uid_map(kit.child_pid) if kit.child_pid else None
    if ranges is None:
        return None
    shown = ", ".join(f"{a}-{a + c - 1} -> {b}-{b + c - 1}" for a, b, c in ranges)
    for inside, outside, count in ranges:
        if inside <= user_id < inside + count:
            owner = ("the daemon's own user" if user_id == 0 else
                     "a subordinate uid of the daemon's user (/etc/subuid), not the daemon's user itself: what it "
                     "writes in a mounted folder is not the daemon user's own there")
            return (f"on this rootless daemon uid {user_id} in a container is uid {outside + user_id - inside} on "
                    f"this machine, {owner} (the daemon's uid map: {shown})")
    return (f"on this rootless daemon uid {user_id} in a container has no uid on this machine: the daemon's user "
            f"namespace maps {shown} (/etc/subuid)")

"""The Docker daemon: a checked client and the facts about it that decide networking."""

from __future__ import annotations

import os
import socket
import subprocess
from dataclasses import asdict, dataclass, field
from typing import Any

import docker
from docker.errors import DockerException

from harness.endpoint import docker_socket, remote
from harness.errors import DockerUnavailable
from harness.host import firewall, rootlesskit
from harness.host.rootlesskit import RootlessKit

HOST_ENV = "OH_MATRIX_HOST"


def host_label() -> str | None:
    """The name the user gives this host (`OH_MATRIX_HOST`, the runner label in the nightly):
    it names the host in results, history and merged reports where a hostname would change
    from one night to the next (GitHub-hosted runners get a new one every job)."""
    return os.environ.get(HOST_ENV, "").strip() or None

_client: docker.DockerClient | None = None
_client_pid: int | None = None
CONTEXT_ENV = "OH_MATRIX_DOCKER_CONTEXT"  # the context DOCKER_HOST was taken from (children read it)


def adopt_context() -> str | None:
    """One daemon for every client of this run, resolved as the Docker CLI resolves it:
    DOCKER_HOST, else the context DOCKER_CONTEXT or ~/.docker/config.json's currentContext
    names (docker-py's own ContextAPI reads it). A context's endpoint is written into this
    process's DOCKER_HOST (and its TLS files into DOCKER_TLS_VERIFY/DOCKER_CERT_PATH), which
    the CLI also takes over any context: docker-py, the `docker` shell-outs, the xdist
    workers and the socket a cell mounts then all name the same daemon. Returns the
    context's name, None when DOCKER_HOST or the default context decides."""
    if os.environ.get("DOCKER_HOST"):
        return os.environ.get(CONTEXT_ENV) or None
    from docker.context import ContextAPI

    name = os.environ.get("DOCKER_CONTEXT") or None
    try:
        ctx = ContextAPI.get_context(name)
    except (DockerException, OSError, ValueError) as e:  # not there, or its meta.json unreadable
        raise DockerUnavailable(f"docker context {name or '(current)'}: {e}") from None
    if ctx is None:  # named but not there: the CLI refuses it too
        raise DockerUnavailable(f"DOCKER_CONTEXT={name}: no such docker context "
                                "(`docker context ls` lists them)")
    if ctx.name == "default" or not ctx.Host:
        return None
    os.environ["DOCKER_HOST"] = ctx.Host
    os.environ[CONTEXT_ENV] = ctx.name
    tls = ctx.TLSConfig
    if tls is not None and getattr(tls, "ca_cert", None):
        os.environ["DOCKER_TLS_VERIFY"] = "1" if getattr(tls, "verify", True) else ""
        os.environ["DOCKER_CERT_PATH"] = os.path.dirname(tls.ca_cert)
    return str(ctx.name)


def client() -> docker.DockerClient:
    """A docker-py client for this process, checked with a ping.

    One per process: docker-py clients are not safe to share across a fork, and
    xdist workers are separate processes anyway.
    """
    global _client, _client_pid
    if _client is not None and _client_pid == os.getpid():
        return _client
    context = adopt_context()
    where = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock") + (f" (docker context {context})"
                                                                           if context else "")
    try:
        c = docker.from_env(timeout=120)  # DOCKER_HOST is set whenever a context decides
        c.ping()
    except DockerException as e:
        reason = _short_reason(e)
        raise DockerUnavailable(f"Docker is not usable at {where}: {reason}") from None
    _client, _client_pid = c, os.getpid()
    return c


def endpoint_name() -> str:
    """The daemon's endpoint as the harness reaches it, for a sentence."""
    return os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")


def lost(e: BaseException) -> str | None:
    """Why `e` (or what it was raised from, or during) is the daemon gone, not a bug: a
    connection to its endpoint refused, aborted or with no socket there, or a client that
    could not be made; in words naming the endpoint and the error. None: something else."""
    import requests

    seen: BaseException | None = e
    for _ in range(20):  # a chain of what was raised during what, never a cycle walked for ever
        if seen is None:
            break
        if isinstance(seen, requests.exceptions.ConnectionError | DockerUnavailable) or (
                isinstance(seen, DockerException) and "Error while fetching server API version" in str(seen)):
            return f"the Docker daemon at {endpoint_name()} went away: {type(seen).__name__}: {str(seen)[:300]}"
        seen = seen.__cause__ or (None if seen.__suppress_context__ else seen.__context__)
    return None


def _short_reason(e: Exception) -> str:
    text = str(e)
    if "Permission denied" in text:
        return "permission denied on the socket (run as root or join the docker group)"
    if "No such file or directory" in text or "FileNotFoundError" in text:
        return "no daemon socket (is dockerd running? try scripts/setup)"
    if "Connection refused" in text:
        return "connection refused (is dockerd running?)"
    if "Name or service not known" in text or "nodename nor servname" in text:
        return "DOCKER_HOST names a host that does not resolve"
    return text.splitlines()[0][:200] if text else type(e).__name__


def bridge_gateway(c: docker.DockerClient) -> str | None:
    """The default bridge's gateway (what host-gateway maps to). The daemon often lists
    only the subnet; the gateway is then the subnet's first address, which is what
    dockerd assigns to docker0."""
    import ipaddress

    try:
        configs = c.networks.get("bridge").attrs["IPAM"]["Config"] or []
    except DockerException:
        return None
    for cfg in configs:
        if cfg.get("Gateway"):
            return str(cfg["Gateway"])
        if cfg.get("Subnet") and ":" not in cfg["Subnet"]:
            return str(next(ipaddress.ip_network(cfg["Subnet"]).hosts()))
    return None


BRIDGE_OPTION = "com.docker.network.bridge."


def bridge_options(c: docker.DockerClient) -> dict[str, str]:
    """The default bridge's driver options, as the daemon was configured (`--icc`, `--ip-masq`,
    `--ip`, `--bridge`): `{"enable_icc": "false", "name": "docker0", ...}`. Two daemons of one
    version on one OS differ here, and their cells with them."""
    try:
        options = c.networks.get("bridge").attrs.get("Options") or {}
    except DockerException:
        return {}
    return {k.removeprefix(BRIDGE_OPTION): str(v) for k, v in sorted(options.items())
            if k.startswith(BRIDGE_OPTION) and k != BRIDGE_OPTION + "default_bridge"}


_rootless: dict[tuple[int, str], bool] = {}


def rootless(c: docker.DockerClient) -> bool:
    """The daemon runs rootless (in RootlessKit's user and network namespaces), by its own
    security options; asked once per process and daemon."""
    key = (os.getpid(), os.environ.get("DOCKER_HOST", ""))
    if key not in _rootless:
        _rootless[key] = _is_rootless(c.info())
    return _rootless[key]


_kits: dict[tuple[int, str], RootlessKit | None] = {}


def rootless_kit(c: docker.DockerClient) -> RootlessKit | None:
    """A rootless daemon's RootlessKit (host/rootlesskit.py), when the daemon is on this
    machine's socket and its API can be read; asked once per process and daemon."""
    key = (os.getpid(), os.environ.get("DOCKER_HOST", ""))
    if key not in _kits:
        _kits[key] = rootlesskit.read(docker_socket()) if rootless(c) and not remote() else None
    return _kits[key]


def gateways(c: docker.DockerClient) -> set[str]:
    """Every network's gateway address on the daemon (the default bridge's included)."""
    out = {g for g in [bridge_gateway(c)] if g}
    try:
        nets = c.networks.list()
    except DockerException:
        return out
    for net in nets:
        for cfg in (net.attrs.get("IPAM") or {}).get("Config") or []:
            if cfg.get("Gateway"):
                out.add(str(cfg["Gateway"]).split("/")[0])
    return out


PODMAN = "podman"


def engine(version: dict[str, Any]) -> str:
    """Which engine answers the Docker API, by `/version`'s own account: `podman` when its
    first component is "Podman Engine" (`podman system service`; V0's runtime builder asks the
    same question the same way), else `docker`. Its version is `/version`'s Version either way."""
    components = version.get("Components") or []
    name = str((components[0] or {}).get("Name", "")) if components else ""
    return PODMAN if name.startswith("Podman") else "docker"


_engines: dict[tuple[int, str], str] = {}


def engine_of(c: docker.DockerClient) -> str:
    """engine() of this process's daemon, asked once per process and daemon."""
    key = (os.getpid(), os.environ.get("DOCKER_HOST", ""))
    if key not in _engines:
        _engines[key] = engine(c.version())
    return _engines[key]


def _is_rootless(info: dict[str, Any]) -> bool:
    return any("rootless" in str(o) for o in info.get("SecurityOptions") or [])


def unusable_remote() -> str | None:
    """Why the cells cannot run on this daemon at all, in one line; None when they can. A
    TLS daemon's client certificates are this machine's files: an app on the daemon's host
    has none, so it could not start a single runtime."""
    host = os.environ.get("DOCKER_HOST", "")
    if host.startswith("tcp://") and os.environ.get("DOCKER_TLS_VERIFY"):
        return (f"DOCKER_HOST={host} with DOCKER_TLS_VERIFY: the app runs on the daemon's host and would "
                "need this machine's client certificates (DOCKER_CERT_PATH) there to start its runtime; "
                "run oh-matrix on the daemon's host, or point it at the daemon's socket (ssh://)")
    return None


def userland_proxy() -> str | None:
    """Whether the daemon answers published ports with docker-proxy (`on`) or by NAT alone
    (`off`: --userland-proxy=false, which also NATs traffic between bridges to a published
    port), read from the rule it puts in the nat table's OUTPUT chain of this network
    namespace: only with the proxy does it skip `127.0.0.0/8`. None when that cannot be
    read (not root, no iptables, a remote or rootless daemon whose rules live elsewhere) or
    is ambiguous (two daemons' rules in one namespace)."""
    if remote():
        return None
    try:
        out = subprocess.run(["iptables", "-t", "nat", "-S", "OUTPUT"], capture_output=True, text=True,
                             timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    kinds = {"on" if "! -d 127.0.0.0/8" in rule else "off" for rule in out.splitlines() if rule.endswith("-j DOCKER")}
    return kinds.pop() if len(kinds) == 1 else None


@dataclass(frozen=True)
class HostFacts:
    """What the daemon says about itself; results carry these so a verdict has its context."""

    server_version: str
    api_version: str
    os: str
    kernel: str
    rootless: bool
    cgroup: str
    storage_driver: str
    bridge_gateway: str | None
    engine: str = "docker"  # docker | podman (engine()): which engine answers the Docker API
    proxies: dict[str, str] = field(default_factory=dict)
    bridge: dict[str, str] = field(default_factory=dict)
    userland_proxy: str | None = None
    firewall: str | None = None  # where firewall rules live here (firewall.front_ends); None: a remote daemon's
    rootlesskit: dict[str, Any] | None = None  # a rootless daemon's RootlessKit (host/rootlesskit.py)
    remote: bool = False  # the daemon is not on this machine's socket (DOCKER_HOST tcp:// or ssh://)
    docker_host: str = ""
    docker_context: str | None = None  # the docker context docker_host was taken from
    hostname: str = ""
    label: str | None = None  # OH_MATRIX_HOST

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def facts(c: docker.DockerClient | None = None) -> HostFacts:
    c = c or client()
    info = c.info()
    version = c.version()
    kind = engine(version)
    gateway = bridge_gateway(c)
    proxies = {
        k: v
        for k, v in (("HTTP_PROXY", info.get("HttpProxy")), ("HTTPS_PROXY", info.get("HttpsProxy")),
                     ("NO_PROXY", info.get("NoProxy")))
        if v
    }
    return HostFacts(
        server_version=str(version.get("Version", "?")),
        api_version=str(version.get("ApiVersion", "?")),
        os=str(info.get("OperatingSystem", "?")),
        kernel=str(info.get("KernelVersion", "?")),
        rootless=_is_rootless(info),
        cgroup=f"v{info.get('CgroupVersion', '?')}/{info.get('CgroupDriver', '?')}",
        storage_driver=str(info.get("Driver", "?")),
        bridge_gateway=gateway,
        engine=kind,
        proxies=proxies,
        bridge=bridge_options(c),
        # a rootless daemon's NAT rules are in RootlessKit's namespace, not this machine's; the
        # rules read here are Docker's, and podman has no userland proxy (netavark's DNAT only)
        userland_proxy=None if _is_rootless(info) or kind == PODMAN else userland_proxy(),
        firewall=None if remote() else firewall.front_ends(),
        rootlesskit=kit.to_dict() if (kit := rootless_kit(c)) else None,
        remote=remote(),
        docker_host=os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock"),
        docker_context=os.environ.get(CONTEXT_ENV) or None,
        hostname=socket.gethostname(),
        label=host_label(),
    )

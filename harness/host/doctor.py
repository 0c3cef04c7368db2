"""`oh-matrix doctor`: what about this Docker host decides whether an app container reaches
its runtime, each finding with a one-line meaning."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

import docker

from harness.endpoint import docker_socket
from harness.host import docker_host, firewall
from harness.host.rootlesskit import RootlessKit


@dataclass(frozen=True)
class Finding:
    name: str
    value: str
    meaning: str
    warn: bool = False


def _run(*cmd: str) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ""


def input_drops(bridge: str = "docker0") -> list[str] | None:
    """The host firewall's rules (iptables and nftables alike) that drop or reject what a
    container on `bridge` sends to the host: behind `connect-timeout` and
    `connection-rejected` (docs/words.md); None when neither front end could be read."""
    found = firewall.rules()
    if found is None:
        return None
    return [f"{r.source}: {r.text}" for r in firewall.matching(found, bridge, None)]


def _userland_proxy() -> str:
    args = _run("ps", "-o", "args=", "-C", "dockerd")
    if len(args.strip().splitlines()) > 1:  # several daemons here: which one is ours, their lines cannot say
        return "not readable here (several dockerd)"
    conf = Path("/etc/docker/daemon.json")
    try:
        data = json.loads(conf.read_text()) if conf.exists() else {}
    except (OSError, ValueError):
        data = {}
    if "--userland-proxy=false" in args or data.get("userland-proxy") is False:
        return "off"
    return "on"


def _docker_config_proxies() -> dict[str, str]:
    path = Path(os.environ.get("DOCKER_CONFIG", Path.home() / ".docker")) / "config.json"
    try:
        proxies = json.loads(path.read_text()).get("proxies", {}).get("default", {})
    except (OSError, ValueError):
        return {}
    return {k: str(v) for k, v in proxies.items()}


def checks(client: docker.DockerClient | None = None) -> list[Finding]:
    client = client or docker_host.client()
    facts = docker_host.facts(client)
    version = tuple(int(x) for x in re.findall(r"\d+", facts.server_version)[:2])
    desktop = "Docker Desktop" in facts.os
    podman = facts.engine == docker_host.PODMAN
    out = [
        Finding("daemon", f"{'Podman Engine ' if podman else ''}{facts.server_version} (API {facts.api_version}), "
                f"{facts.os}",
                "podman's Docker-compatible API (`podman system service`): its own networks (netavark), no "
                "docker-proxy, and releases that ask which engine this is (below)" if podman
                else "Docker Desktop runs containers in a VM: host and host-gateway mean the VM" if desktop
                else "Docker Engine, rootless: host networking is RootlessKit's namespace" if facts.rootless
                else "Docker Engine, remote: host networking is its host's, not this machine's" if facts.remote
                else "Docker Engine: host networking is this machine's"),
        Finding("endpoint", facts.docker_host + (f" (docker context {facts.docker_context})"
                                                 if facts.docker_context else ""),
                "a remote daemon: published ports are on its host, not this machine's, and this "
                "machine's firewall and load are not its own (not read below)" if facts.remote
                else "this machine's daemon: its published ports are on this machine", warn=facts.remote),
        Finding("host label", facts.label or f"none ({docker_host.HOST_ENV} unset)",
                "names this host in history and merged reports" if facts.label
                else f"history knows this host as {facts.hostname}/{facts.server_version}: set "
                f"{docker_host.HOST_ENV} where the hostname changes between runs (hosted CI runners)"),
        _rootless(facts),
        _host_gateway(facts, version) if podman else
        Finding("host-gateway", "supported" if version >= (20, 10) else "not supported",
                "--add-host host.docker.internal:host-gateway resolves to the bridge gateway"
                if version >= (20, 10) else "needs Docker 20.10+: the documented command fails",
                warn=version < (20, 10)),
        Finding("bridge gateway", facts.bridge_gateway or "unknown",
                "what host.docker.internal maps to; DOCKER_HOST_ADDR can name it for V0"),
        Finding("cgroup", facts.cgroup, "the daemon's cgroup version and driver"),
    ]
    if podman:
        out.append(_v0_on_podman(version))
    if facts.remote:  # the rules and the socket are this machine's, not the daemon's host's
        out.append(Finding("firewall", "not read: remote daemon",
                           "its host's iptables and nftables decide its containers' traffic; read them there"))
    else:
        out += _local(facts)
    env_proxies = {k: v for k, v in os.environ.items() if k.upper() in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY")}
    cfg_proxies = _docker_config_proxies()
    out.append(Finding("proxies", ", ".join(f"{k}={v}" for k, v in {**env_proxies, **cfg_proxies,
                                                                    **facts.proxies}.items()) or "none",
                       "~/.docker/config.json proxies are injected into every container: the app's httpx "
                       "then sends runtime requests to the proxy unless NO_PROXY covers them"
                       if cfg_proxies else "no proxy reaches the containers", warn=bool(cfg_proxies)))
    if not facts.remote:
        sock = docker_socket()
        try:
            st = os.stat(sock)
            perms = f"{sock} {stat.filemode(st.st_mode)} uid={st.st_uid} gid={st.st_gid}"
        except OSError as e:
            perms = f"{sock}: {e.strerror}"
        out.append(Finding("socket", perms, "mounted into every app container: root-equivalent on this host"))
    return out


# podman's version from which its Docker API maps `host-gateway` (podman PR #19152), and from
# which V0's runtime builder (openhands/runtime/builder/docker.py) accepts podman at all
PODMAN_HOST_GATEWAY, PODMAN_V0 = (4, 7), (4, 9)


def _host_gateway(facts: docker_host.HostFacts, version: tuple[int, ...]) -> Finding:
    """What podman does with `host-gateway`: before 4.7 its Docker API writes the word into
    /etc/hosts as if it were an address (`host-gateway\thost.docker.internal`, measured on
    4.3.1), so the name resolves nowhere; its CLI refuses it (`invalid IP address in add-host`)."""
    if version >= PODMAN_HOST_GATEWAY:
        return Finding("host-gateway", "supported (podman >= 4.7)",
                       "--add-host host.docker.internal:host-gateway resolves to the podman network's gateway")
    gateway = facts.bridge_gateway or "the podman network's gateway"
    return Finding("host-gateway", f"not mapped (podman {facts.server_version} < 4.7)",
                   "its Docker API writes `host-gateway` into /etc/hosts as it is, so host.docker.internal does not "
                   f"resolve; host.containers.internal ({gateway}) is in every container's /etc/hosts, and an "
                   f"address given instead (--add-host host.docker.internal:{gateway}) works; podman >= 4.7 maps "
                   "host-gateway", warn=True)


def _v0_on_podman(version: tuple[int, ...]) -> Finding:
    ok = version >= PODMAN_V0
    return Finding("releases", "0.x accepts this podman" if ok else "0.x refuses this podman",
                   "V0's runtime builder requires podman >= 4.9.0 and starts no runtime below it: "
                   + ("this one is" if ok else "every 0.x cell fails at once with `Podman server version must be "
                      ">= 4.9.0`; 1.x and Agent Canvas do not ask"), warn=not ok)


def _rootless(facts: docker_host.HostFacts) -> Finding:
    if not facts.rootless:
        return Finding("rootless", "no", "containers share this host's network stack when asked")
    kit = RootlessKit(**facts.rootlesskit) if facts.rootlesskit else None
    reach = ("" if kit is None or not kit.host_alias else
             f"; containers reach this machine's published ports at {kit.host_alias}" if kit.host_loopback else
             f"; {kit.host_alias} does not reach this machine's loopback (--disable-host-loopback), so no address "
             "but this machine's own reaches its published ports from a container")
    return Finding("rootless", "yes: " + (kit.describe() if kit else "RootlessKit's API not readable here"),
                   "--network host and host-gateway mean RootlessKit's network namespace, not this machine; its "
                   "docker-proxy listens for published ports on the namespace's loopback only, so a container is "
                   "refused at host-gateway" + reach, warn=True)


def _local(facts: docker_host.HostFacts) -> list[Finding]:
    """What only this machine can tell of a local daemon: its iptables backend, the userland
    proxy, the firewall's front ends and rules on the bridge's path."""
    out = []
    backend = _run("iptables", "-V").strip()
    out.append(Finding("iptables", backend or "not found",
                       "Docker's NAT rules; a daemon and a firewall on different backends (nf_tables vs "
                       "legacy) do not see each other's rules", warn=not backend))
    if facts.rootless:  # its bridge and NAT rules are in RootlessKit's namespace, not this machine's
        out.append(Finding("userland-proxy", "RootlessKit's docker-proxy",
                           "published ports are forwarded by RootlessKit's port driver from this machine into its "
                           "namespace, where docker-proxy answers on the loopback"))
    elif facts.engine == docker_host.PODMAN:  # Docker's proxy setting is not podman's; podman has none
        out.append(Finding("userland-proxy", "none (podman: netavark's DNAT rules)",
                           "published ports are NATed to the container by netavark's rules; nothing listens on the "
                           "host's side of them"))
    else:
        read = (f"{facts.userland_proxy} (the daemon's nat OUTPUT rule to its DOCKER chain "
                f"{'skips' if facts.userland_proxy == 'on' else 'does not skip'} 127.0.0.0/8)"
                if facts.userland_proxy else f"{_userland_proxy()} (dockerd's command line and daemon.json)")
        out.append(Finding("userland-proxy", read,
                           "on: a container's connect to a published port on this host is answered by docker-proxy "
                           "through INPUT; off: the daemon NATs it to the container, and on Docker up to 28 its "
                           "isolation rules drop it between two bridge networks (a custom-network app reaching its "
                           "runtime on the default bridge: connect-timeout; moby PR #49981)",
                           warn=facts.userland_proxy == "off"))
    out.append(Finding("firewall", firewall.front_ends(),
                       "where firewall rules live here: iptables (as `iptables -S` prints them) and nftables "
                       "tables of their own (nftables.conf, firewalld), which `iptables -S` does not show"))
    if facts.rootless:
        out.append(Finding("INPUT drops from docker0", "not read: rootless daemon",
                           "its docker0 is in RootlessKit's namespace; its containers reach this machine through "
                           "slirp4netns, as this machine's own processes, on the loopback"))
        return out
    # podman's default network is its own bridge, podman0, not Docker's docker0
    bridge = "podman0" if facts.engine == docker_host.PODMAN else "docker0"
    found = input_drops(bridge)
    readable, drops = found is not None, found or []
    out.append(Finding(f"INPUT drops from {bridge}", "; ".join(drops) or ("none" if readable else "not readable here"),
                       "these drop or reject app->runtime connects on the default bridge (connect-timeout, "
                       f"connection-rejected); allow {bridge} to the runtime ports or use a user-defined network"
                       if drops else "nothing in INPUT drops or rejects bridge-to-host traffic" if readable
                       else "run as root to read iptables and nftables", warn=bool(drops)))
    for tool in ("ufw", "firewall-cmd", "nft"):
        if shutil.which(tool):
            out.append(Finding(tool, "installed", "a firewall front-end: check its rules for docker0"))
    return out

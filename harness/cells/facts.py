"""What the daemon says of one container: where its ports are published, its environment,
its state and exit, its CPU and memory, its events. Reads only, no decisions: the cell's
observation, evidence and boot meter are built from these."""

from __future__ import annotations

import contextlib
import datetime as dt
import time
from typing import Any

import docker
from docker.errors import APIError, NotFound
from docker.models.containers import Container


def published_on(container: Container, host_port: int) -> list[str]:
    """The host addresses a host port of the container is published on (HostIp '' = all)."""
    ports = (container.attrs.get("NetworkSettings") or {}).get("Ports") or {}
    return sorted({b.get("HostIp") or "0.0.0.0" for binds in ports.values() for b in (binds or [])
                   if int(b["HostPort"]) == host_port})


def inner_port(container: Container, host_port: int) -> int:
    """The container's own port behind a published host port (V0 uses the same number; the
    V1 sandbox listens on 8000 behind a random host port)."""
    for inner, binds in ((container.attrs.get("NetworkSettings") or {}).get("Ports") or {}).items():
        if binds and any(int(b["HostPort"]) == host_port for b in binds):
            return int(inner.split("/")[0])
    return host_port


def env_of(container: Container) -> dict[str, str]:
    return dict(e.partition("=")[::2] for e in (container.attrs.get("Config") or {}).get("Env") or [])


def address_on(container: Container, network: str) -> str:
    """The container's address on one of its networks (0.0.0.0 where it has none there)."""
    container.reload()
    nets = (container.attrs.get("NetworkSettings") or {}).get("Networks") or {}
    return str((nets.get(network) or {}).get("IPAddress") or "0.0.0.0")


def address_of(container: Container) -> str | None:
    """The container's address on its (first) network, as read last (None: it has none)."""
    nets: dict[str, dict[str, Any]] = (container.attrs.get("NetworkSettings") or {}).get("Networks") or {}
    first = next(iter(nets.values()), None) or {}
    return str(first.get("IPAddress") or "") or None


def network_mode(container: Container) -> str:
    return str((container.attrs.get("HostConfig") or {}).get("NetworkMode") or "default")


def where(container: Container, role: str) -> str:
    """A probe's vantage point with the network it sees: on the host network, /etc/hosts is a
    copy of the host's own file, not Docker's."""
    mode = network_mode(container)
    note = ", /etc/hosts copied from the host" if mode == "host" else ""
    return f"{role} (network {mode}{note})"


def state_line(container: Container) -> str:
    """State, exit code, OOM flag and where its ports are published, as the host sees it."""
    with contextlib.suppress(NotFound, APIError):
        container.reload()
    state = container.attrs.get("State") or {}
    ports = (container.attrs.get("NetworkSettings") or {}).get("Ports") or {}
    published = ", ".join(f"{inner} on {b['HostIp'] or '0.0.0.0'}:{b['HostPort']}"
                          for inner, binds in sorted(ports.items()) for b in (binds or []))
    return (f"{container.name}: {state.get('Status')}, exit code {state.get('ExitCode')}, "
            f"OOM {bool(state.get('OOMKilled'))}, network {network_mode(container)}, "
            f"published: {published or 'nothing'}")


def started_at(container: Container) -> float | None:
    """When the daemon started the container (epoch seconds), from its State.StartedAt."""
    stamp = str((container.attrs.get("State") or {}).get("StartedAt") or "")
    if not stamp or stamp.startswith("0001-"):
        return None
    head, _, frac = stamp.rstrip("Z").partition(".")
    try:
        started = dt.datetime.fromisoformat(head).replace(tzinfo=dt.UTC)
    except ValueError:
        return None
    return started.timestamp() + (float(f"0.{frac[:6]}") if frac else 0.0)


def cpu_and_memory(container: Container | None) -> tuple[float, float]:
    """The container's CPU seconds since it started and its memory now, by the daemon's own
    accounting (a one-shot stats call); zeros for a container that is gone."""
    if container is None:
        return 0.0, 0.0
    try:
        stats = container.stats(stream=False, one_shot=True)
    except (NotFound, APIError):
        return 0.0, 0.0
    cpu = float(((stats.get("cpu_stats") or {}).get("cpu_usage") or {}).get("total_usage") or 0) / 1e9
    return cpu, float((stats.get("memory_stats") or {}).get("usage") or 0)


def daemon_events(client: docker.DockerClient, name: str, since: float) -> str:
    """What the daemon's event stream says about a container since `since`: create, start,
    die (with its exit code), oom, kill..., in order."""
    try:
        events = list(client.events(since=int(since), until=int(time.time()) + 1, decode=True,
                                    filters={"container": name, "type": "container"}))
    except (APIError, NotFound):
        return ""
    parts = []
    for e in events:
        attrs = (e.get("Actor") or {}).get("Attributes") or {}
        extra = f" exitCode={attrs['exitCode']}" if "exitCode" in attrs else ""
        when = dt.datetime.fromtimestamp(e.get("time", 0), dt.UTC).strftime("%H:%M:%S")
        parts.append(f"{when} {e.get('Action') or e.get('status')}{extra}")
    return ", ".join(parts)


def bridge_of(client: docker.DockerClient, container: Container) -> str:
    """The interface a container's packets to the host arrive on: its network's bridge
    (`lo` on the host network)."""
    nets: dict[str, dict[str, Any]] = (container.attrs.get("NetworkSettings") or {}).get("Networks") or {}
    name, info = next(iter(nets.items()), ("host", dict[str, Any]()))
    if name == "host" or network_mode(container) == "host":
        return "lo"
    try:
        options = client.networks.get(info.get("NetworkID") or name).attrs.get("Options") or {}
    except docker.errors.DockerException:
        options = {}
    net_id = str(info.get("NetworkID") or "")
    return str(options.get("com.docker.network.bridge.name") or f"br-{net_id[:12]}")

"""Podman answering the Docker API (`podman system service`): what it does differently from
Docker's daemon that a cell's result must say, each measured on podman 4.3.1 (docs/podman.md).

- Its API takes `--add-host NAME:host-gateway` and writes the word into the container's
  /etc/hosts as if it were an address (`host-gateway\tNAME`) before 4.7: NAME resolves to
  nothing there. Podman >= 4.7 maps it to the network's gateway (podman PR #19152).
- V0's runtime builder (openhands/runtime/builder/docker.py) refuses podman below 4.9.0
  before it starts any runtime: `Podman server version must be >= 4.9.0`."""

from __future__ import annotations

import re

import docker

from harness.host import docker_host
from harness.host.containers import read_file

REFUSAL = "Podman server version must be >= 4.9.0"  # V0's runtime builder, its own words
MAPS_HOST_GATEWAY = (4, 7)


def _version(client: docker.DockerClient) -> tuple[str, tuple[int, ...]]:
    text = str(client.version().get("Version", "?"))
    return text, tuple(int(x) for x in re.findall(r"\d+", text)[:2])


def unmapped_host_gateway(client: docker.DockerClient, container: docker.models.containers.Container,
                          whose: str = "the app's") -> str | None:
    """A note when podman wrote an `--add-host NAME:host-gateway` into the container's
    /etc/hosts as it is; None on Docker, on a podman that maps it, or with no such entry."""
    if docker_host.engine_of(client) != docker_host.PODMAN:
        return None
    version, number = _version(client)
    if number >= MAPS_HOST_GATEWAY:
        return None
    hosts = read_file(container, "/etc/hosts") or ""
    lines = [" ".join(line.split()) for line in hosts.splitlines() if line.split()[:1] == ["host-gateway"]]
    if not lines:
        return None
    names = ", ".join(n for line in lines for n in line.split()[1:])
    gateway = docker_host.bridge_gateway(client) or "the podman network's gateway"
    return (f"podman {version} wrote `{'; '.join(lines)}` into {whose} /etc/hosts: before 4.7 its Docker API does "
            f"not map host-gateway, so {names} resolves to no address there; host.containers.internal ({gateway}) "
            f"is in every container's /etc/hosts, and podman >= 4.7 maps host-gateway")


def refused(texts: list[str]) -> str | None:
    """The one-line note for a release that refused this podman in its own words (`texts`: the
    cell's evidence): no flag or env changes that check, so no remedy is tried on this podman."""
    if not any(REFUSAL in t for t in texts):
        return None
    version = _version(docker_host.client())[0]
    return (f"nothing on this podman works for 0.x: V0's runtime builder refuses podman {version} before it "
            f"starts any runtime (`{REFUSAL}`, openhands/runtime/builder/docker.py), in every mode; podman >= 4.9 "
            "is accepted (and >= 4.7 maps host-gateway)")

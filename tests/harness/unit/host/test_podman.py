"""Podman as the Docker API, without a daemon: the engine told from `/version` as podman 4.3.1's
service answers it (measured here), and what doctor, the host's facts, history and the merged
report say of it."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

from harness.host import docker_host, doctor
from harness.model import Host
from harness.results.merge import host_class

# podman 4.3.1's `GET /version` (`podman system service`, Debian 12), trimmed
PODMAN_VERSION: dict[str, Any] = {
    "Platform": {"Name": "linux/amd64/debian-12"},
    "Components": [{"Name": "Podman Engine", "Version": "4.3.1", "Details": {"APIVersion": "4.3.1",
                                                                             "MinAPIVersion": "4.0.0"}},
                   {"Name": "Conmon", "Version": "conmon version 2.1.6, commit: unknown"},
                   {"Name": "OCI Runtime (runc)", "Version": "runc version 1.1.5+ds1"}],
    "Version": "4.3.1", "ApiVersion": "1.41", "MinAPIVersion": "1.24"}
DOCKER_VERSION: dict[str, Any] = {
    "Platform": {"Name": ""},
    "Components": [{"Name": "Engine", "Version": "20.10.24+dfsg1"}, {"Name": "containerd", "Version": "1.6.20"}],
    "Version": "20.10.24+dfsg1", "ApiVersion": "1.41"}
PODMAN_INFO: dict[str, Any] = {"OperatingSystem": "debian", "KernelVersion": "6.1", "Driver": "overlay",
                               "CgroupVersion": "1", "CgroupDriver": "cgroupfs",
                               "SecurityOptions": ["name=seccomp,profile=default"]}


def test_the_engine_is_told_by_versions_first_component() -> None:
    assert docker_host.engine(PODMAN_VERSION) == "podman"
    assert docker_host.engine(DOCKER_VERSION) == "docker"
    assert docker_host.engine({"Version": "19.03"}) == "docker"  # an old daemon lists no components


class _Net:
    attrs: ClassVar[dict[str, Any]] = {"IPAM": {"Config": [{"Subnet": "10.88.0.0/16", "Gateway": "10.88.0.1"}]},
                                       "Options": {}}


class _Nets:
    def get(self, name: str) -> _Net:
        return _Net()

    def list(self) -> list[_Net]:
        return [_Net()]


class _Podman:
    networks = _Nets()

    def info(self) -> dict[str, Any]:
        return PODMAN_INFO

    def version(self) -> dict[str, Any]:
        return PODMAN_VERSION


def test_a_podman_hosts_facts_name_it_and_read_no_docker_proxy_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    """Docker's nat rules on this machine are the Docker daemon's, not podman's: podman has no
    userland proxy, so none is reported for it."""
    monkeypatch.setenv("DOCKER_HOST", "unix:///run/oh-matrix-podman.sock")
    monkeypatch.setattr(docker_host, "userland_proxy", lambda: pytest.fail("read Docker's nat rules for podman"))
    monkeypatch.setattr(docker_host.firewall, "front_ends", lambda: "iptables v1.8.9 (nf_tables)")
    facts = docker_host.facts(_Podman())  # type: ignore[arg-type]
    assert facts.engine == "podman" and facts.server_version == "4.3.1" and facts.bridge_gateway == "10.88.0.1"
    assert facts.userland_proxy is None and facts.rootless is False
    host = Host(**{k: v for k, v in facts.to_dict().items() if k in Host.model_fields})
    assert host.engine == "podman" and host.daemon_kind == " podman"
    assert host_class(host) == "debian / Podman 4.3.1"
    assert host_class(Host(os="Debian GNU/Linux 12 (bookworm)", server_version="20.10.24")) == \
        "Debian GNU/Linux 12 (bookworm) / Docker 20.10.24"


def _facts(version: str) -> docker_host.HostFacts:
    return docker_host.HostFacts(server_version=version, api_version="1.41", os="debian", kernel="6.1",
                                 rootless=False, cgroup="v1/cgroupfs", storage_driver="overlay",
                                 bridge_gateway="10.88.0.1", engine="podman",
                                 docker_host="unix:///run/oh-matrix-podman.sock")


def test_doctor_names_podman_what_its_host_gateway_does_and_whom_it_refuses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(docker_host, "facts", lambda c=None: _facts("4.3.1"))
    read: list[str] = []
    monkeypatch.setattr(doctor, "input_drops", lambda bridge="docker0": read.append(bridge) or [])
    found = {f.name: f for f in doctor.checks(object())}  # type: ignore[arg-type]
    assert found["daemon"].value.startswith("Podman Engine 4.3.1 (API 1.41)")
    gateway = found["host-gateway"]
    assert gateway.warn and gateway.value == "not mapped (podman 4.3.1 < 4.7)"
    assert "host.containers.internal (10.88.0.1)" in gateway.meaning and "podman >= 4.7" in gateway.meaning
    assert found["releases"].warn and "Podman server version must be >= 4.9.0" in found["releases"].meaning
    assert found["userland-proxy"].value.startswith("none (podman")
    assert read == ["podman0"] and "INPUT drops from podman0" in found


def test_a_newer_podman_maps_host_gateway_and_is_accepted_by_v0(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(docker_host, "facts", lambda c=None: _facts("4.9.3"))
    monkeypatch.setattr(doctor, "input_drops", lambda bridge="docker0": [])
    found = {f.name: f for f in doctor.checks(object())}  # type: ignore[arg-type]
    assert not found["host-gateway"].warn and not found["releases"].warn


class _Container:
    def __init__(self, hosts: str) -> None:
        self.hosts = hosts

    def exec_run(self, cmd: list[str], demux: bool = False) -> tuple[int, bytes]:
        assert cmd == ["cat", "/etc/hosts"]
        return 0, self.hosts.encode()


def test_a_host_gateway_podman_wrote_as_it_is_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    """podman 4.3.1's /etc/hosts of a container created with ExtraHosts host-gateway (measured)."""
    from harness.host import podman

    monkeypatch.setenv("DOCKER_HOST", "unix:///run/test-podman-unit.sock")
    hosts = "host-gateway\thost.docker.internal\n127.0.0.1\tlocalhost\n10.88.0.1\thost.containers.internal\n"
    note = podman.unmapped_host_gateway(_Podman(), _Container(hosts))  # type: ignore[arg-type]
    assert note is not None and note.startswith("podman 4.3.1 wrote `host-gateway host.docker.internal` into the "
                                                "app's /etc/hosts")
    assert "host.containers.internal (10.88.0.1)" in note
    assert podman.unmapped_host_gateway(_Podman(), _Container("10.88.0.1\thost.docker.internal\n")) is None  # type: ignore[arg-type]


def test_a_release_that_refuses_podman_gets_one_line_and_no_remedy(monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.host import podman

    monkeypatch.setattr(docker_host, "client", lambda: _Podman())
    said = podman.refused(["the app reports its runtime failed to start ...: Podman server version must be >= 4.9.0"])
    assert said is not None and said.startswith("nothing on this podman works for 0.x") and "4.3.1" in said
    assert podman.refused(["connect refused"]) is None
